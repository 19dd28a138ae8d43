package dashboard

import (
	"sort"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/steer"
)

// The views are what the pages render: plain structs built from the cache
// on every change, small enough to send whole (device tables are not in
// them; they are paged separately).

type productView struct {
	Name        string                 `json:"name"`
	ProductKey  string                 `json:"productKey"`
	DisplayName string                 `json:"displayName,omitempty"`
	Devices     int64                  `json:"devices"`
	Modules     []otav1.ModuleVersions `json:"modules"`
	Batches     []batchSummary         `json:"activeBatches"`
}

type batchSummary struct {
	Name      string           `json:"name"`
	Product   string           `json:"product"`
	Module    string           `json:"module"`
	Version   string           `json:"version"`
	Phase     otav1.BatchPhase `json:"phase"`
	Paused    bool             `json:"paused"`
	Counts    otav1.TaskCounts `json:"counts"`
	Finished  bool             `json:"finished"`
	CreatedAt metav1.Time      `json:"createdAt"`
}

type productsPage struct {
	Namespace string         `json:"namespace"`
	Products  []productView  `json:"products"`
	Batches   []batchSummary `json:"batches"`
}

// productsView lists the products with their active batches, and every
// batch of the namespace, newest first, for navigation.
func (s *Server) productsView() (any, error) {
	var prods otav1.ProductList
	if err := s.watch.list(&prods, client.InNamespace(s.ns)); err != nil {
		return nil, err
	}
	batches, err := s.batchSummaries()
	if err != nil {
		return nil, err
	}
	page := productsPage{Namespace: s.ns, Products: []productView{}, Batches: batches}
	for _, p := range prods.Items {
		v := productView{Name: p.Name, ProductKey: p.Spec.ProductKey, DisplayName: p.Spec.DisplayName,
			Devices: p.Status.Devices, Modules: p.Status.Modules, Batches: []batchSummary{}}
		for _, b := range batches {
			if b.Product == p.Name && !b.Finished {
				v.Batches = append(v.Batches, b)
			}
		}
		page.Products = append(page.Products, v)
	}
	sort.Slice(page.Products, func(i, j int) bool { return page.Products[i].Name < page.Products[j].Name })
	return page, nil
}

func (s *Server) batchSummaries() ([]batchSummary, error) {
	var ubs otav1.UpgradeBatchList
	if err := s.watch.list(&ubs, client.InNamespace(s.ns)); err != nil {
		return nil, err
	}
	fws, err := s.firmwares()
	if err != nil {
		return nil, err
	}
	out := make([]batchSummary, 0, len(ubs.Items))
	for i := range ubs.Items {
		out = append(out, summarize(&ubs.Items[i], fws[ubs.Items[i].Spec.Firmware]))
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(&out[j].CreatedAt) {
			return out[j].CreatedAt.Before(&out[i].CreatedAt)
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

func summarize(ub *otav1.UpgradeBatch, fw *otav1.Firmware) batchSummary {
	b := batchSummary{Name: ub.Name, Phase: ub.Status.Phase, Paused: ub.Spec.Paused, Counts: ub.Status.Counts,
		Finished: steer.Finished(ub.Status.Phase), CreatedAt: ub.CreationTimestamp}
	if fw != nil {
		b.Product, b.Module, b.Version = fw.Spec.Product, moduleOf(fw), fw.Spec.Version
	}
	return b
}

func moduleOf(fw *otav1.Firmware) string {
	if fw.Spec.Module == "" {
		return otav1.DefaultModule
	}
	return fw.Spec.Module
}

// firmwares maps the namespace's firmwares by name.
func (s *Server) firmwares() (map[string]*otav1.Firmware, error) {
	var fws otav1.FirmwareList
	if err := s.watch.list(&fws, client.InNamespace(s.ns)); err != nil {
		return nil, err
	}
	m := make(map[string]*otav1.Firmware, len(fws.Items))
	for i := range fws.Items {
		m[fws.Items[i].Name] = &fws.Items[i]
	}
	return m, nil
}

type firmwareView struct {
	Name         string               `json:"name"`
	Product      string               `json:"product"`
	Module       string               `json:"module"`
	Version      string               `json:"version"`
	Description  string               `json:"description,omitempty"`
	Diff         bool                 `json:"diff"`
	SignMethod   otav1.SignMethod     `json:"signMethod"`
	Signed       bool                 `json:"signed"` // an Ed25519 signature is checked
	Ready        bool                 `json:"ready"`
	Artifact     *otav1.Artifact      `json:"artifact,omitempty"`
	Verification otav1.Verification   `json:"verification"`
	Usage        otav1.FirmwareUsage  `json:"usage"`
	Runs         []verificationRunRow `json:"runs"`
}

type verificationRunRow struct {
	Name    string               `json:"name"`
	Phase   otav1.RunPhase       `json:"phase"`
	Devices []otav1.DeviceResult `json:"devices"`
}

func (s *Server) firmwaresView() (any, error) {
	fws, err := s.firmwares()
	if err != nil {
		return nil, err
	}
	var runs otav1.VerificationRunList
	if err := s.watch.list(&runs, client.InNamespace(s.ns)); err != nil {
		return nil, err
	}
	out := []firmwareView{}
	for _, fw := range fws {
		v := firmwareView{Name: fw.Name, Product: fw.Spec.Product, Module: moduleOf(fw), Version: fw.Spec.Version,
			Description: fw.Spec.Description, Diff: fw.Spec.Diff, SignMethod: fw.Spec.SignMethod,
			Signed: fw.Spec.Signature != nil, Artifact: fw.Status.Artifact, Verification: fw.Status.Verification,
			Usage: fw.Status.Usage, Runs: []verificationRunRow{},
			Ready: apimeta.IsStatusConditionTrue(fw.Status.Conditions, otav1.ConditionReady)}
		for _, r := range runs.Items {
			if r.Spec.Firmware == fw.Name {
				v.Runs = append(v.Runs, verificationRunRow{Name: r.Name, Phase: r.Status.Phase, Devices: r.Status.Devices})
			}
		}
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return map[string]any{"namespace": s.ns, "firmwares": out}, nil
}
