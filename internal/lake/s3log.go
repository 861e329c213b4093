package lake

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/apache/iceberg-go/io/gocloud/s3"
	"github.com/apache/iceberg-go/utils"
	"github.com/aws/smithy-go/logging"
)

// s3Context carries an AWS configuration whose SDK logger writes to log
// at debug level: left to itself the SDK prints its warnings ("failed to
// discard remaining HTTP response body") on stderr, beside the one line
// K2 gives for a refused request. Without the configuration (it could not
// be resolved), ctx is returned as it was and iceberg-go resolves it.
func s3Context(ctx context.Context, props map[string]string, log *slog.Logger) context.Context {
	cfg, err := s3.ParseAWSConfig(ctx, props)
	if err != nil {
		return ctx
	}
	cfg.Logger = logging.LoggerFunc(func(c logging.Classification, format string, v ...any) {
		log.Debug("S3 client: "+fmt.Sprintf(format, v...), "level", string(c))
	})
	return utils.WithAwsConfig(ctx, cfg)
}
