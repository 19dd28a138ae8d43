package plugin

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/controller-runtime/pkg/client"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/steer"
)

// slicesPerPage keeps one page near 5,000 devices: large enough that a
// 100,000-device product needs 20 round trips, small enough that the first
// rows appear at once and memory stays flat.
const slicesPerPage = 50

type devicesOptions struct {
	product, batch, run, state, module, version string
	limit                                       int
	pageSize                                    int64
}

func newDevicesCommand(o *rootOptions) *cobra.Command {
	d := &devicesOptions{pageSize: slicesPerPage}
	cmd := &cobra.Command{
		Use:   "devices",
		Short: "List devices from the inventory, or the devices of a batch",
		Long: "Without --batch, lists the product's inventory (DeviceSlices): modules and\n" +
			"versions, last seen, and the task holding each device. With --batch, lists the\n" +
			"batch's device tasks (UpgradeSlices): state, step, attempt and failure reason;\n" +
			"--run (or --batch vr/NAME) does the same for a VerificationRun.\n" +
			"Rows are printed page by page, so large fleets start printing at once.",
		Example: "  kubectl ota devices --product smart-plug --module wifi --version 1.0.0\n" +
			"  kubectl ota devices --batch smart-plug-wifi-1.1.0 --state FAILED\n" +
			"  kubectl ota devices --run smart-plug-wifi-1.1.0-lab",
		Args: cobra.NoArgs,
		RunE: o.runE(func(ctx context.Context, c client.Client, ns string, _ []string) error {
			if d.pageSize <= 0 {
				return fmt.Errorf("--chunk-size must be positive")
			}
			d.state = strings.ToUpper(d.state)
			kind, name, err := d.campaign()
			if err != nil {
				return err
			}
			if name != "" {
				return d.listTasks(ctx, c, ns, kind, name, o.streams.Out)
			}
			if d.product == "" {
				return fmt.Errorf("--product is required without --batch")
			}
			return d.listInventory(ctx, c, ns, o.streams.Out, time.Now())
		}),
	}
	f := cmd.Flags()
	f.StringVar(&d.product, "product", "", "Product (name of the Product object); required without --batch")
	f.StringVar(&d.batch, "batch", "", "List the device tasks of this UpgradeBatch (or of vr/NAME, a VerificationRun)")
	f.StringVar(&d.run, "run", "", "List the device tasks of this VerificationRun")
	f.StringVar(&d.state, "state", "", "Only tasks in this state (CONFIRM, QUEUED, NOTIFIED, IN_PROGRESS, SUCCEEDED, FAILED, TIMED_OUT, CANCELED)")
	f.StringVar(&d.module, "module", "", "Only devices reporting this module (with --batch: the batch's module)")
	f.StringVar(&d.version, "version", "", "Only devices on this version (of --module, or of any module); with --batch, the version before the upgrade")
	f.IntVar(&d.limit, "limit", 0, "Print at most this many devices; 0 prints all")
	f.Int64Var(&d.pageSize, "chunk-size", slicesPerPage, "Slices (of up to 100 devices each) fetched per request, as kubectl's --chunk-size")
	_ = cmd.RegisterFlagCompletionFunc("product", o.completeFlagNames(&otav1.ProductList{}))
	_ = cmd.RegisterFlagCompletionFunc("batch", o.completeFlagNames(&otav1.UpgradeBatchList{}))
	return cmd
}

func (d *devicesOptions) listInventory(ctx context.Context, c client.Client, ns string, out io.Writer, now time.Time) error {
	prod := &otav1.Product{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: d.product}, prod); err != nil {
		return err
	}
	t := newStreamTable(out, "NAME", "MODULES", "LAST SEEN", "TASK")
	printed := 0
	list := &otav1.DeviceSliceList{}
	err := steer.Pages(ctx, c, list, d.pageSize, func() (bool, error) {
		for i := range list.Items {
			for _, dev := range list.Items[i].Devices {
				if !d.matchDevice(dev) {
					continue
				}
				t.Row(dev.Name, modulesCell(dev.Modules), lastSeenCell(dev.LastSeen, now), taskCell(dev.Lock))
				if printed++; d.limit > 0 && printed >= d.limit {
					return false, t.Flush()
				}
			}
		}
		return true, t.Flush()
	}, client.InNamespace(ns), client.MatchingLabels{otav1.LabelProductKey: prod.Spec.ProductKey})
	if err == nil && printed == 0 {
		fmt.Fprintf(out, "No devices of product %s (productKey %s) match.\n", d.product, prod.Spec.ProductKey)
	}
	return err
}

func (d *devicesOptions) matchDevice(dev otav1.DeviceRecord) bool {
	if d.state != "" && (dev.Lock == nil || string(dev.Lock.State) != d.state) {
		return false
	}
	if d.module == "" && d.version == "" {
		return true
	}
	for _, mv := range dev.Modules {
		if (d.module == "" || mv.Module == d.module) && (d.version == "" || mv.Version == d.version) {
			return true
		}
	}
	return false
}

// campaign returns the campaign whose tasks to list, if any: --run NAME,
// --batch NAME, or --batch with kubectl's short names (ub/NAME, vr/NAME).
func (d *devicesOptions) campaign() (otav1.CampaignKind, string, error) {
	if d.run != "" && d.batch != "" {
		return "", "", fmt.Errorf("--run and --batch name one campaign each; give one of them")
	}
	if d.run != "" {
		return otav1.KindVerificationRun, d.run, nil
	}
	prefix, name, found := strings.Cut(d.batch, "/")
	if !found {
		return otav1.KindUpgradeBatch, d.batch, nil
	}
	switch strings.ToLower(prefix) {
	case "vr", "verificationrun", "verificationruns":
		return otav1.KindVerificationRun, name, nil
	case "ub", "upgradebatch", "upgradebatches":
		return otav1.KindUpgradeBatch, name, nil
	}
	return "", "", fmt.Errorf("--batch %s: want NAME, ub/NAME or vr/NAME", d.batch)
}

func (d *devicesOptions) listTasks(ctx context.Context, c client.Client, ns string, kind otav1.CampaignKind, name string, out io.Writer) error {
	var obj client.Object = &otav1.UpgradeBatch{}
	if kind == otav1.KindVerificationRun {
		obj = &otav1.VerificationRun{}
	}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, obj); err != nil {
		return err
	}
	t := newStreamTable(out, "NAME", "STATE", "STEP", "ATTEMPT", "REASON")
	printed := 0
	list := &otav1.UpgradeSliceList{}
	err := steer.Pages(ctx, c, list, d.pageSize, func() (bool, error) {
		for i := range list.Items {
			s := &list.Items[i]
			if d.module != "" && s.Module != d.module {
				continue
			}
			for _, task := range s.Tasks {
				if !d.matchTask(task) {
					continue
				}
				t.Row(task.Device, string(task.State), strconv.Itoa(int(task.Step)), strconv.Itoa(int(task.Attempt)), reasonCell(task))
				if printed++; d.limit > 0 && printed >= d.limit {
					return false, t.Flush()
				}
			}
		}
		return true, t.Flush()
	}, client.InNamespace(ns), client.MatchingLabels{
		otav1.LabelCampaign: name, otav1.LabelKind: string(kind),
	})
	if err == nil && printed == 0 {
		fmt.Fprintf(out, "No device tasks of %s %s match.\n", strings.ToLower(string(kind)), name)
	}
	return err
}

func (d *devicesOptions) matchTask(task otav1.DeviceTask) bool {
	return (d.state == "" || string(task.State) == d.state) && (d.version == "" || task.FromVersion == d.version)
}

func modulesCell(mvs []otav1.ModuleVersion) string {
	if len(mvs) == 0 {
		return "-"
	}
	parts := make([]string, len(mvs))
	for i, mv := range mvs {
		parts[i] = mv.Module + "=" + mv.Version
	}
	return strings.Join(parts, ",")
}

func lastSeenCell(unix int64, now time.Time) string {
	if unix == 0 {
		return "<never>"
	}
	return duration.HumanDuration(now.Sub(time.Unix(unix, 0))) + " ago"
}

// taskCell shows the campaign holding the device as "ub/name:STATE", the
// short names kubectl accepts, so it can be pasted into `kubectl get`.
func taskCell(l *otav1.DeviceLock) string {
	if l == nil {
		return "-"
	}
	kind, name, ok := strings.Cut(l.Campaign, "/")
	if ok {
		switch otav1.CampaignKind(kind) {
		case otav1.KindUpgradeBatch:
			kind = "ub"
		case otav1.KindVerificationRun:
			kind = "vr"
		}
		return kind + "/" + name + ":" + string(l.State)
	}
	return l.Campaign + ":" + string(l.State)
}

func reasonCell(t otav1.DeviceTask) string {
	switch {
	case t.Invalid != "":
		return "unreadable slice line: " + t.Invalid
	case t.Reason == "":
		return "-"
	case t.Message != "":
		return t.Reason + ": " + t.Message
	}
	return t.Reason
}
