package stack

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/k2-market-data/k2/internal/bus"
)

// topicCollector exports the end offset of every partition of K2's topics
// at each scrape: what a broker holds, and, by its rate, what flows in. A
// topic whose offset stops moving is a feed that stopped.
type topicCollector struct {
	desc   *prometheus.Desc
	cl     *kgo.Client
	prefix string
}

func newTopicCollector(brokers []string, sec bus.Security, prefix string) (*topicCollector, error) {
	cl, err := bus.NewClient(brokers, sec, kgo.ClientID("k2-metrics"))
	if err != nil {
		return nil, err
	}
	return &topicCollector{
		desc: prometheus.NewDesc("k2_kafka_topic_end_offset",
			"Offset after the newest record of each partition of K2's topics.", []string{"topic", "partition"}, nil),
		cl: cl, prefix: prefix + "market.",
	}, nil
}

func (c *topicCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *topicCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	adm := kadm.NewClient(c.cl)
	topics, err := adm.ListTopics(ctx)
	if err != nil {
		return // the scrape shows no series; /health says why
	}
	var names []string
	for _, t := range topics.Names() {
		if strings.HasPrefix(t, c.prefix) {
			names = append(names, t)
		}
	}
	ends, err := adm.ListEndOffsets(ctx, names...)
	if err != nil {
		return
	}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err == nil {
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(o.Offset), o.Topic, strconv.Itoa(int(o.Partition)))
		}
	})
}

func (c *topicCollector) close() { c.cl.Close() }
