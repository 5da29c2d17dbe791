package client_test

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/tally-oss/tally/client"
)

// The README's "Try it", in Go: a meter of LLM tokens by model for
// successful calls, three events, and the usage of this month by customer
// and model.
func Example() {
	ctx := context.Background()
	url, key := tally() // with make run: client.DefaultURL and the key it printed
	c := client.New(url, key)

	_, err := c.CreateMeter(ctx, client.Meter{
		Key: "tokens", Name: "LLM tokens", EventType: "llm.completion",
		Aggregation: "SUM", ValueProperty: "$.usage.tokens",
		GroupBy: map[string]string{"model": "$.model"},
		Filter:  json.RawMessage(`{"status": {"eq": "ok"}}`),
	})
	if err != nil {
		fmt.Println(err)
		return
	}

	res, err := c.Send(ctx,
		client.Event{ID: "evt-1", Type: "llm.completion", CustomerID: "acme",
			Properties: map[string]any{"model": "gpt-4o", "status": "ok", "usage": map[string]any{"tokens": json.Number("1200.5")}}},
		client.Event{ID: "evt-2", Type: "llm.completion", CustomerID: "acme",
			Properties: map[string]any{"model": "gpt-4o-mini", "status": "ok", "usage": map[string]any{"tokens": 300}}},
		client.Event{ID: "evt-3", Type: "llm.completion", CustomerID: "acme",
			Properties: map[string]any{"model": "gpt-4o", "status": "error", "usage": map[string]any{"tokens": 999}}},
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("accepted %d, rejected %d\n", res.Accepted, len(res.Rejected))

	q := client.UsageQuery{GroupBy: []string{"customer_id", "model"}}
	usage := waitForTotal(ctx, c, "tokens", q, "1500.5")
	for _, row := range usage.Data {
		fmt.Println(row.CustomerID, row.GroupBy["model"], row.Value)
	}
	fmt.Println("total", usage.Total())
	// Output:
	// accepted 3, rejected 0
	// acme gpt-4o 1200.5
	// acme gpt-4o-mini 300
	// total 1500.5
}

// A Batcher sends many events in few requests; each gets an id, and
// sending them again (here: all of them, after a Flush) counts each once.
func ExampleBatcher() {
	ctx := context.Background()
	url, key := tally()
	c := client.New(url, key)
	if _, err := c.CreateMeter(ctx, client.Meter{Key: "calls", EventType: "api.call", Aggregation: "COUNT"}); err != nil {
		fmt.Println(err)
		return
	}

	b := c.NewBatcher(ctx, client.BatcherConfig{MaxEvents: 500})
	var sent []client.Event
	for i := range 2000 {
		ev := client.Event{Type: "api.call", CustomerID: fmt.Sprintf("customer-%d", i%3)}
		id, err := b.Add(ctx, ev)
		if err != nil {
			fmt.Println(err)
			return
		}
		ev.ID = id
		sent = append(sent, ev)
	}
	if err := b.Flush(ctx); err != nil {
		fmt.Println(err)
		return
	}
	for _, ev := range sent { // the same events again
		if _, err := b.Add(ctx, ev); err != nil {
			fmt.Println(err)
			return
		}
	}
	// Then one new event per customer: a customer's events are stored in
	// order, so once these count, the copies before them were read too.
	for i := range 3 {
		if _, err := b.Add(ctx, client.Event{ID: fmt.Sprint("last-", i), Type: "api.call", CustomerID: fmt.Sprintf("customer-%d", i)}); err != nil {
			fmt.Println(err)
			return
		}
	}
	if err := b.Close(ctx); err != nil {
		fmt.Println(err)
		return
	}
	st := b.Stats()
	fmt.Printf("accepted %d, rejected %d, failed %d\n", st.Accepted, st.Rejected, st.Failed)

	usage := waitForTotal(ctx, c, "calls", client.UsageQuery{GroupBy: []string{"customer_id"}}, "2003")
	for _, row := range usage.Data {
		fmt.Println(row.CustomerID, row.Value)
	}
	// Output:
	// accepted 4003, rejected 0, failed 0
	// customer-0 668
	// customer-1 668
	// customer-2 667
}
