package main

// Grafana in the compose files: its provisioning (deploy/grafana/
// provisioning) parses, the datasource points at the file's Prometheus, the
// dashboard provider's path is where the compose file mounts Tally's
// dashboard, and every panel's datasource resolves to a provisioned one.

import (
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// tallyDashboard is the dashboard every Grafana of the compose files shows.
const tallyDashboard = "deploy/grafana/tally-dashboard.json"

type grafanaDatasource struct {
	Name      string         `yaml:"name"`
	Type      string         `yaml:"type"`
	UID       string         `yaml:"uid"`
	URL       string         `yaml:"url"`
	IsDefault bool           `yaml:"isDefault"`
	Access    string         `yaml:"access"`
	Editable  bool           `yaml:"editable"`
	JSONData  map[string]any `yaml:"jsonData"`
}

// provisioningFiles parses every YAML file of one provisioning kind.
func provisioningFiles[T any](t *testing.T, where, dir, kind string) []T {
	t.Helper()
	paths, _ := filepath.Glob(filepath.Join(repoRoot, dir, kind, "*.y*ml"))
	if len(paths) == 0 {
		t.Errorf("%s: no %s provisioning files in %s/%s", where, kind, dir, kind)
	}
	var out []T
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var v T
		dec := yaml.NewDecoder(strings.NewReader(string(data)))
		dec.KnownFields(true)
		if err := dec.Decode(&v); err != nil {
			t.Errorf("%s: %s: %v", where, p, err)
			continue
		}
		out = append(out, v)
	}
	return out
}

func checkComposeGrafana(t *testing.T, name string, f *composeFile) {
	var where string
	var grafana composeService
	for svcName, s := range f.Services {
		if strings.HasPrefix(s.Image, "grafana/grafana") {
			where, grafana = name+" service "+svcName, s
		}
	}
	if where == "" {
		t.Errorf("%s: no Grafana service", name)
		return
	}
	dir, ok := grafana.bindMount("/etc/grafana/provisioning")
	if !ok {
		t.Errorf("%s: no provisioning directory mounted at /etc/grafana/provisioning", where)
		return
	}
	type datasourcesFile struct {
		APIVersion  int                 `yaml:"apiVersion"`
		Datasources []grafanaDatasource `yaml:"datasources"`
	}
	var datasources []grafanaDatasource
	for _, df := range provisioningFiles[datasourcesFile](t, where, dir, "datasources") {
		datasources = append(datasources, df.Datasources...)
	}
	for _, ds := range datasources {
		checkGrafanaDatasource(t, where, f, ds)
	}
	type dashboardsFile struct {
		APIVersion int `yaml:"apiVersion"`
		Providers  []struct {
			Name            string `yaml:"name"`
			Folder          string `yaml:"folder"`
			Type            string `yaml:"type"`
			DisableDeletion bool   `yaml:"disableDeletion"`
			AllowUIUpdates  bool   `yaml:"allowUiUpdates"`
			Options         struct {
				Path                      string `yaml:"path"`
				FoldersFromFilesStructure bool   `yaml:"foldersFromFilesStructure"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	var dashboards []string
	for _, df := range provisioningFiles[dashboardsFile](t, where, dir, "dashboards") {
		for _, p := range df.Providers {
			if p.Type != "file" || p.Options.Path == "" {
				t.Errorf("%s: dashboard provider %q: want type file with options.path", where, p.Name)
				continue
			}
			found := mountedUnder(t, grafana, p.Options.Path)
			if len(found) == 0 {
				t.Errorf("%s: dashboard provider %q reads %s, where nothing of the repository is mounted", where, p.Name, p.Options.Path)
			}
			dashboards = append(dashboards, found...)
		}
	}
	if !slices.Contains(dashboards, tallyDashboard) {
		t.Errorf("%s: %s is not provisioned (provisioned: %v)", where, tallyDashboard, dashboards)
	}
	for _, d := range dashboards {
		checkDashboardDatasources(t, where+" "+d, readRepoFile(t, where, d), datasources)
	}
}

// checkGrafanaDatasource: a Prometheus datasource is the compose file's
// Prometheus service on its port.
func checkGrafanaDatasource(t *testing.T, where string, f *composeFile, ds grafanaDatasource) {
	if ds.UID == "" || ds.Name == "" || ds.Type == "" {
		t.Errorf("%s: datasource %+v: want a name, a type and a uid (dashboards refer to it)", where, ds)
	}
	if ds.Access != "proxy" {
		// A browser cannot resolve the compose service names.
		t.Errorf("%s: datasource %s access %q: want proxy (Grafana's server reaches it, not the browser)", where, ds.Name, ds.Access)
	}
	u, err := url.Parse(ds.URL)
	if err != nil {
		t.Errorf("%s: datasource %s url: %v", where, ds.Name, err)
		return
	}
	target, ok := f.Services[u.Hostname()]
	if !ok {
		t.Errorf("%s: datasource %s points at %s, not a service of this file", where, ds.Name, u.Host)
		return
	}
	if ds.Type == "prometheus" && (!strings.HasPrefix(target.Image, "prom/prometheus:") || u.Port() != "9090" || slices.ContainsFunc(target.Command, func(a string) bool {
		return strings.HasPrefix(a, "--web.listen-address")
	})) {
		t.Errorf("%s: datasource %s points at %s, want the Prometheus service on its port 9090", where, ds.Name, u.Host)
	}
}

// mountedUnder returns the repository files of a service mounted at or
// below dir (a mounted directory contributes its .json files).
func mountedUnder(t *testing.T, s composeService, dir string) []string {
	var out []string
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) < 2 || !strings.HasPrefix(parts[0], ".") {
			continue
		}
		src, target := filepath.Clean(parts[0]), parts[1]
		if target != dir && !strings.HasPrefix(target, dir+"/") {
			continue
		}
		info, err := os.Stat(filepath.Join(repoRoot, src))
		if err != nil {
			continue // checkComposeWiring reports it
		}
		if !info.IsDir() {
			out = append(out, src)
			continue
		}
		paths, _ := filepath.Glob(filepath.Join(repoRoot, src, "*.json"))
		for _, p := range paths {
			rel, _ := filepath.Rel(repoRoot, p)
			out = append(out, rel)
		}
	}
	return out
}

// checkDashboardDatasources: every panel and target names a provisioned
// datasource, by uid or through a datasource variable whose type has a
// default datasource.
func checkDashboardDatasources(t *testing.T, where string, data []byte, datasources []grafanaDatasource) {
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Errorf("%s: %v", where, err)
		return
	}
	if d.UID == "" || d.Title == "" {
		t.Errorf("%s: a provisioned dashboard needs a uid and a title", where)
	}
	checkDashboardLayout(t, where, &d)
	vars := map[string]string{} // datasource variable -> plugin type
	for _, v := range d.Templating.List {
		if v.Type == "datasource" {
			vars[v.Name] = v.queryString()
		}
	}
	resolves := func(ref *datasourceRef) bool {
		if ref == nil {
			return true // the dashboard's default
		}
		if strings.HasPrefix(ref.UID, "$") {
			typ, ok := vars[strings.Trim(ref.UID, "${}")]
			return ok && slices.ContainsFunc(datasources, func(ds grafanaDatasource) bool { return ds.Type == typ && ds.IsDefault })
		}
		return slices.ContainsFunc(datasources, func(ds grafanaDatasource) bool { return ds.UID == ref.UID && ds.Type == ref.Type })
	}
	for _, p := range d.allPanels() {
		if !resolves(p.Datasource) {
			t.Errorf("%s: panel %q: datasource %+v is neither provisioned nor a datasource variable with a default datasource", where, p.Title, *p.Datasource)
		}
		for _, tg := range p.Targets {
			if !resolves(tg.Datasource) {
				t.Errorf("%s: panel %q target %s: datasource %+v is not provisioned", where, p.Title, tg.RefID, *tg.Datasource)
			}
		}
	}
}
