package dashboard

import (
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/rollout"
)

type batchPage struct {
	batchSummary
	Namespace      string              `json:"namespace"`
	Firmware       string              `json:"firmware"`
	Type           otav1.BatchType     `json:"type"`
	Scope          string              `json:"scope"`
	RatePerMinute  int32               `json:"ratePerMinute"`
	Timeout        string              `json:"timeout,omitempty"`
	Retry          *otav1.RetryPolicy  `json:"retry,omitempty"`
	Abort          *otav1.AbortPolicy  `json:"abort,omitempty"`
	Schedule       *otav1.Schedule     `json:"schedule,omitempty"`
	Canceled       bool                `json:"canceled"`
	CurrentWave    int32               `json:"currentWave"`
	PausedUntil    *metav1.Time        `json:"pausedUntil,omitempty"`
	Waves          []waveView          `json:"waves"`
	FailureReasons []otav1.ReasonCount `json:"failureReasons"`
	Conditions     []metav1.Condition  `json:"conditions"`
	StartTime      *metav1.Time        `json:"startTime,omitempty"`
	CompletionTime *metav1.Time        `json:"completionTime,omitempty"`
	// DevicesGen changes whenever the batch's slices change: the page
	// reloads its device table page then, and only then.
	DevicesGen uint64 `json:"devicesGen"`
	Unreadable int    `json:"unreadableLines"`
}

type waveView struct {
	Number           int32  `json:"number"`
	Percent          int32  `json:"percent"`
	Target           int64  `json:"target"` // devices the wave pushes
	Pause            string `json:"pause,omitempty"`
	SuccessThreshold int32  `json:"successThreshold"`
	waveCounts
}

var batchResource = schema.GroupResource{Group: otav1.GroupVersion.Group, Resource: "upgradebatches"}

// batchView is the batch page: the batch's spec and status with its waves'
// progress counted from the device index.
func (s *Server) batchView(name string) (any, error) {
	ub := &otav1.UpgradeBatch{}
	if err := s.watch.cache.Get(ctxBackground, client.ObjectKey{Namespace: s.ns, Name: name}, ub); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, apierrors.NewNotFound(batchResource, name)
		}
		return nil, err
	}
	fws, err := s.firmwares()
	if err != nil {
		return nil, err
	}
	ix, err := s.indexes.get(s.ns, name)
	if err != nil {
		return nil, err
	}
	sp, st := &ub.Spec, &ub.Status
	v := batchPage{batchSummary: summarize(ub, fws[sp.Firmware]), Namespace: s.ns, Firmware: sp.Firmware,
		Type: sp.Type, Scope: scopeText(sp.Scope), RatePerMinute: sp.RatePerMinute, Retry: sp.Retry,
		Abort: sp.Abort, Schedule: sp.Schedule, Canceled: sp.Cancel != nil, CurrentWave: st.CurrentWave,
		PausedUntil: st.PausedUntil, FailureReasons: st.FailureReasons, Conditions: st.Conditions,
		StartTime: st.StartTime, CompletionTime: st.CompletionTime, DevicesGen: ix.gen, Unreadable: ix.invalid,
		Waves: waves(ub, ix)}
	if sp.Timeout != nil {
		v.Timeout = sp.Timeout.Duration.String()
	}
	return v, nil
}

func scopeText(s otav1.Scope) string {
	switch s.Type {
	case otav1.ScopeGray:
		return fmt.Sprintf("Gray %d%%", s.GrayPercent)
	case otav1.ScopeList:
		if s.DevicesFrom != nil {
			return "List (from a ConfigMap or object)"
		}
		return fmt.Sprintf("List of %d devices", len(s.Devices))
	}
	return "All"
}

// waves describes each wave with its target (its share of the selected
// devices, as the engine cuts them) and its tasks' states. A batch without
// waves is one wave of 100%.
func waves(ub *otav1.UpgradeBatch, ix *batchIndex) []waveView {
	spec := ub.Spec.Waves
	if len(spec) == 0 {
		spec = []otav1.Wave{{Percent: 100}}
	}
	total := ub.Status.Counts.Total
	out := make([]waveView, 0, len(spec))
	var before int64
	for i, w := range spec {
		upTo := int64(rollout.WaveEnd(int(total), w.Percent))
		v := waveView{Number: int32(i + 1), Percent: w.Percent, Target: upTo - before, SuccessThreshold: w.SuccessThreshold}
		before = upTo
		if w.Pause != nil {
			v.Pause = "until promoted"
			if w.Pause.Duration != nil {
				v.Pause = w.Pause.Duration.Duration.String()
			}
		}
		if c := ix.waves[int32(i+1)]; c != nil {
			v.waveCounts = *c
		}
		out = append(out, v)
	}
	return out
}
