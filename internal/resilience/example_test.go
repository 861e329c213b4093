package resilience_test

import (
	"fmt"

	"github.com/k2-market-data/k2/internal/resilience"
)

// A consumer observes lag and memory once per poll, pauses at
// CIRCUIT_BREAK, and asks the shedder about each record. With the default
// (empty) policy nothing is ever dropped; here reference data may be shed
// from GRACEFUL.
func Example() {
	// Budget: the container's memory limit; thresholds are fractions of it.
	deg, err := resilience.NewDegradation(resilience.Config{MemoryBudget: 4 << 30})
	if err != nil {
		panic(err)
	}
	dataTypes := []string{"trades", "quotes", "reference_data"} // record.DataTypes() in K2
	policy, err := resilience.ParsePolicy([]byte("data_types:\n  reference_data: {from: GRACEFUL}\n"), dataTypes)
	if err != nil {
		panic(err)
	}
	shed, err := resilience.NewShedder(policy, nil)
	if err != nil {
		panic(err)
	}

	lag := int64(750_000) // from the consumer group's offsets
	level := deg.Observe(lag, resilience.ProcessMemory())
	// At CIRCUIT_BREAK the consumer pauses its partitions (nothing is
	// lost: the records wait in Kafka) and keeps observing until it resumes.
	fmt.Println(level, deg.ShouldPause())
	fmt.Println(shed.Keep(level, "trades", "BTCUSDT"))
	fmt.Println(shed.Keep(level, "reference_data", "BTCUSDT"))
	// Output:
	// GRACEFUL false
	// true
	// false
}
