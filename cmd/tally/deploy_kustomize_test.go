package main

// A small reader of the kustomizations under deploy/kubernetes: enough of
// `kubectl apply -k` for what these files use, and accessors for the parsed
// YAML, for deploy_kubernetes_test.go.

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// obj is one Kubernetes object as parsed YAML.
type obj map[string]any

func (o obj) kind() string { return str(o, "kind") }
func (o obj) name() string { return str(o, "metadata", "name") }
func (o obj) id() string   { return o.kind() + "/" + o.name() }

// at walks maps by keys; nil when a key is missing.
func at(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			if o, isObj := v.(obj); isObj {
				m = o
			} else {
				return nil
			}
		}
		v = m[k]
	}
	return v
}

func str(v any, keys ...string) string {
	if x := at(v, keys...); x != nil {
		return fmt.Sprint(x)
	}
	return ""
}

func list(v any, keys ...string) []any {
	l, _ := at(v, keys...).([]any)
	return l
}

func dict(v any, keys ...string) map[string]any {
	m, _ := at(v, keys...).(map[string]any)
	return m
}

// loadKustomization renders a kustomization as `kubectl apply -k` would for
// what these files use: resources (files and directories), patches of plain
// maps (merged into the object of the same kind and name), the namespace.
// Every YAML file of the directory must be a resource or a patch.
func loadKustomization(t *testing.T, dir string) []obj {
	t.Helper()
	var k struct {
		Namespace string   `yaml:"namespace"`
		Resources []string `yaml:"resources"`
		Patches   []struct {
			Path string `yaml:"path"`
		} `yaml:"patches"`
	}
	if err := yaml.Unmarshal(readRepoFile(t, dir, filepath.Join(dir, "kustomization.yaml")), &k); err != nil {
		t.Fatalf("%s: %v", dir, err)
	}
	used := map[string]bool{"kustomization.yaml": true}
	var objs []obj
	for _, r := range k.Resources {
		path := filepath.Join(dir, r)
		if st, err := os.Stat(filepath.Join(repoRoot, path)); err == nil && st.IsDir() {
			// kustomize refuses a base that contains the overlay ("cycle
			// detected: candidate root ... contains visited root").
			if rel, err := filepath.Rel(path, dir); err == nil && !strings.HasPrefix(rel, "..") {
				t.Errorf("%s: resource %s contains the kustomization itself; kustomize refuses it (an overlay must not live inside its base)", dir, r)
			}
			objs = append(objs, loadKustomization(t, path)...)
			continue
		}
		used[r] = true
		objs = append(objs, readObjects(t, path)...)
	}
	for _, p := range k.Patches {
		used[p.Path] = true
		for _, patch := range readObjects(t, filepath.Join(dir, p.Path)) {
			i := slices.IndexFunc(objs, func(o obj) bool { return o.id() == patch.id() })
			if i < 0 {
				t.Errorf("%s: patch %s matches no resource %s", dir, p.Path, patch.id())
				continue
			}
			merge(objs[i], patch)
		}
	}
	files, _ := filepath.Glob(filepath.Join(repoRoot, dir, "*.yaml"))
	for _, f := range files {
		if !used[filepath.Base(f)] {
			t.Errorf("%s: %s is neither a resource nor a patch of kustomization.yaml", dir, filepath.Base(f))
		}
	}
	for _, o := range objs {
		if ns := str(o, "metadata", "namespace"); k.Namespace != "" && ns != "" && ns != k.Namespace {
			t.Errorf("%s: %s in namespace %s, the kustomization's is %s", dir, o.id(), ns, k.Namespace)
		}
	}
	return objs
}

func readObjects(t *testing.T, path string) []obj {
	t.Helper()
	dec := yaml.NewDecoder(strings.NewReader(string(readRepoFile(t, path, path))))
	var objs []obj
	for {
		var o map[string]any
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if o != nil {
			objs = append(objs, obj(o))
		}
	}
}

// merge applies a patch of maps: maps merge key by key, anything else
// replaces.
func merge(dst, patch map[string]any) {
	for k, v := range patch {
		if pm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				merge(dm, pm)
				continue
			}
		}
		dst[k] = v
	}
}
