package priceops

import (
	"encoding/json"
	"testing"

	"github.com/tally-oss/tally/schemas"
)

func plan(code, name, scenario, project string, meters ...string) schemas.Plan {
	p := schemas.Plan{Code: code, Name: name, Metadata: map[string]string{}}
	if scenario != "" {
		p.Metadata[ScenarioMetadataKey] = scenario
	}
	if project != "" {
		p.Metadata[ProjectMetadataKey] = project
	}
	for _, m := range meters {
		p.Charges = append(p.Charges, schemas.Charge{Meter: m, ChargeModel: schemas.ChargeStandard})
	}
	return p
}

func sub(id, customer, planCode string, status schemas.SubscriptionStatus) schemas.Subscription {
	return schemas.Subscription{ExternalID: id, ExternalCustomerID: customer, PlanCode: planCode, Status: status}
}

func TestBuildCustomers(t *testing.T) {
	plans := map[string]schemas.Plan{
		"better":  plan("better", "Better", "Product Launch", "New Project", "API"),
		"good":    plan("good", "Good_MVP", "Product Launch", "Project - MVP Launch", "API", "storage"),
		"bare":    plan("bare", "Bare", "", ""),
		"twin-a":  plan("twin-a", "Twin", "", "", "b"),
		"twin-b":  plan("twin-b", "Twin", "", "", "a"),
		"deleted": {},
	}
	tests := []struct {
		name string
		subs []schemas.Subscription
		want string
	}{
		{name: "none is an empty array", want: `[]`},
		{
			name: "plans by name, resources distinct and sorted, customers sorted",
			subs: []schemas.Subscription{
				sub("s3", "1008", "good", schemas.StatusActive),
				sub("s1", "1007", "good", schemas.StatusActive),
				sub("s2", "1007", "better", schemas.StatusActive),
			},
			want: `[{"customer_id":"1007","customer_plans":[` +
				`{"product_name":"Better","status":"active","scenario_name":"Product Launch","project_name":"New Project"},` +
				`{"product_name":"Good_MVP","status":"active","scenario_name":"Product Launch","project_name":"Project - MVP Launch"}],` +
				`"resource_list":["API","storage"]},` +
				`{"customer_id":"1008","customer_plans":[` +
				`{"product_name":"Good_MVP","status":"active","scenario_name":"Product Launch","project_name":"Project - MVP Launch"}],` +
				`"resource_list":["API","storage"]}]`,
		},
		{
			name: "no metadata and no charges give empty strings and an empty list",
			subs: []schemas.Subscription{sub("s1", "c", "bare", schemas.StatusPending)},
			want: `[{"customer_id":"c","customer_plans":[{"product_name":"Bare","status":"pending","scenario_name":"","project_name":""}],"resource_list":[]}]`,
		},
		{
			name: "the same plan and status twice is one line; another status is another",
			subs: []schemas.Subscription{
				sub("s1", "c", "bare", schemas.StatusActive),
				sub("s2", "c", "bare", schemas.StatusActive),
				sub("s3", "c", "bare", schemas.StatusPending),
			},
			want: `[{"customer_id":"c","customer_plans":[` +
				`{"product_name":"Bare","status":"active","scenario_name":"","project_name":""},` +
				`{"product_name":"Bare","status":"pending","scenario_name":"","project_name":""}],"resource_list":[]}]`,
		},
		{
			name: "two plans of one name are two lines, ordered by code",
			subs: []schemas.Subscription{sub("s1", "c", "twin-b", schemas.StatusActive), sub("s2", "c", "twin-a", schemas.StatusActive)},
			want: `[{"customer_id":"c","customer_plans":[` +
				`{"product_name":"Twin","status":"active","scenario_name":"","project_name":""},` +
				`{"product_name":"Twin","status":"active","scenario_name":"","project_name":""}],"resource_list":["a","b"]}]`,
		},
		{
			name: "a deleted plan is left out, and so is a customer with nothing else",
			subs: []schemas.Subscription{
				sub("s1", "gone", "deleted", schemas.StatusActive),
				sub("s2", "kept", "deleted", schemas.StatusActive),
				sub("s3", "kept", "bare", schemas.StatusActive),
			},
			want: `[{"customer_id":"kept","customer_plans":[{"product_name":"Bare","status":"active","scenario_name":"","project_name":""}],"resource_list":[]}]`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := json.Marshal(buildCustomers(tt.subs, plans))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}
