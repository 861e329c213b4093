package main

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/k2-market-data/k2/internal/bus"
	"github.com/k2-market-data/k2/internal/stack"
)

// admin opens a Kafka admin client on the configured brokers.
func (a *app) admin(ctx context.Context) (*kadm.Client, *kgo.Client, error) {
	brokers := a.cfg.Kafka.BrokerList()
	sec, err := bus.NewSecurity(a.cfg.Kafka.Security)
	if err != nil {
		return nil, nil, err
	}
	if err := bus.Check(ctx, brokers, sec); err != nil {
		return nil, nil, err
	}
	cl, err := bus.NewClient(brokers, sec, kgo.ClientID("k2-admin"))
	if err != nil {
		return nil, nil, err
	}
	return kadm.NewClient(cl), cl, nil
}

func newTopicsCmd(a *app) *cobra.Command {
	var jsonOut bool
	cmd := &cobra.Command{Use: "topics", Short: "Create, list and describe K2's Kafka topics"}
	cmd.PersistentFlags().BoolVar(&jsonOut, "json", false, "print JSON")
	a.cfg.RegisterKafka(cmd.PersistentFlags())
	create := &cobra.Command{
		Use:   "create",
		Short: "Create every market.{asset_class}.{data_type}.{exchange} topic and its .dlq topic that is missing",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			adm, cl, err := a.admin(cmd.Context())
			if err != nil {
				return err
			}
			defer cl.Close()
			res, err := bus.CreateTopics(cmd.Context(), adm, stack.Topology(a.cfg.Kafka))
			if jsonOut {
				json.NewEncoder(cmd.OutOrStdout()).Encode(res)
			} else {
				created := 0
				for _, r := range res {
					if r.Created {
						created++
						fmt.Fprintf(cmd.OutOrStdout(), "created %s (%d partitions)\n", r.Topic, r.Partitions)
					}
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%d topics created, %d already existed\n", created, len(res)-created)
			}
			return err
		},
	}
	list := &cobra.Command{
		Use: "list", Short: "K2's topics with partitions and record counts", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.describeTopics(cmd, jsonOut, false, nil) },
	}
	describe := &cobra.Command{
		Use: "describe [TOPIC...]", Short: "Topics with their end offsets and the configs K2 set",
		RunE: func(cmd *cobra.Command, args []string) error { return a.describeTopics(cmd, jsonOut, true, args) },
	}
	cmd.AddCommand(create, list, describe)
	return cmd
}

func (a *app) describeTopics(cmd *cobra.Command, jsonOut, detail bool, names []string) error {
	adm, cl, err := a.admin(cmd.Context())
	if err != nil {
		return err
	}
	defer cl.Close()
	prefix := a.cfg.Kafka.TopicPrefix
	if detail && len(names) == 0 {
		all, err := bus.DescribeTopics(cmd.Context(), adm, prefix)
		if err != nil {
			return err
		}
		for _, t := range all {
			names = append(names, t.Topic)
		}
	}
	infos, err := bus.DescribeTopics(cmd.Context(), adm, prefix, names...)
	if err != nil {
		return fmt.Errorf("kafka %s: %w", a.cfg.Kafka.Brokers, err)
	}
	if jsonOut {
		enc := json.NewEncoder(cmd.OutOrStdout())
		enc.SetIndent("", "  ")
		return enc.Encode(infos)
	}
	tw := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tPARTITIONS\tRECORDS")
	for _, t := range infos {
		fmt.Fprintf(tw, "%s\t%d\t%d\n", t.Topic, t.Partitions, t.Records)
		if detail {
			fmt.Fprintf(tw, "  end offsets\t%v\t\n  configs\t%v\t\n", t.EndOffsets, t.Configs)
		}
	}
	return tw.Flush()
}
