package chclient_test

import (
	"strings"
	"testing"

	"github.com/tally-oss/tally/internal/chclient"
)

func TestValidateCluster(t *testing.T) {
	for cluster, ok := range map[string]bool{
		"": true, "tally": true, "prod_eu_1": true,
		"a-b": false, "tally ON CLUSTER x": false, "t'": false, "1c": false,
	} {
		cfg := chclient.Config{Addr: "127.0.0.1:9000", Database: "tally", MaxOpenConns: 1, Cluster: cluster}
		err := cfg.Validate()
		if (err == nil) != ok || err != nil && !strings.Contains(err.Error(), "clickhouse.cluster") {
			t.Errorf("cluster %q: %v", cluster, err)
		}
	}
}
