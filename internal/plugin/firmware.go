package plugin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
)

type pushOptions struct {
	product, module, version, signMethod, name, description string
	timeout                                                 time.Duration
}

func newFirmwareCommand(o *rootOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "firmware", Aliases: []string{"fw"}, Short: "Manage firmware images",
		Example: "  kubectl ota firmware push wifi-1.1.0.bin --product smart-plug --module wifi --version 1.1.0"}
	p := &pushOptions{}
	push := &cobra.Command{
		Use:   "push FILE",
		Short: "Create a Firmware and upload FILE through its pre-signed URL",
		Long: "push creates a Firmware with an upload source, waits for the operator to publish\n" +
			"a pre-signed PUT URL in status.upload, streams FILE to it, and waits until the\n" +
			"Firmware is Ready (stored, digests computed, signature checked). The file's SHA-256\n" +
			"is computed first and set in spec.source.upload.sha256, so a corrupted upload is refused.",
		Example: "  kubectl ota firmware push wifi-1.1.0.bin --product smart-plug --module wifi --version 1.1.0",
		Args:    cobra.ExactArgs(1),
		RunE: o.runE(func(ctx context.Context, c client.Client, ns string, args []string) error {
			return p.run(ctx, c, ns, args[0], o.streams.Out, o.streams.ErrOut)
		}),
	}
	f := push.Flags()
	f.StringVar(&p.product, "product", "", "Product (name of the Product object) the image is for")
	f.StringVar(&p.module, "module", otav1.DefaultModule, "OTA module the image is for")
	f.StringVar(&p.version, "version", "", "Version the devices report after installing the image")
	f.StringVar(&p.signMethod, "sign-method", string(otav1.SignMethodMD5), "Digest devices check: Md5 or Sha256")
	f.StringVar(&p.name, "name", "", "Name of the Firmware (default <product>-<module>-<version>, or <product>-<version> for the default module)")
	f.StringVar(&p.description, "description", "", "Release notes shown to users in the app")
	f.DurationVar(&p.timeout, "timeout", 10*time.Minute, "How long to wait for the operator at each step")
	_ = push.MarkFlagRequired("product")
	_ = push.RegisterFlagCompletionFunc("product", o.completeFlagNames(&otav1.ProductList{}))
	_ = push.MarkFlagRequired("version")
	cmd.AddCommand(push)
	return cmd
}

var notDNS = regexp.MustCompile(`[^a-z0-9.-]+`)

// firmwareName derives a valid object name: versions may hold '_' and
// capitals, which object names may not.
func firmwareName(product, module, version string) string {
	parts := []string{product, module, version}
	if module == otav1.DefaultModule {
		parts = []string{product, version}
	}
	n := notDNS.ReplaceAllString(strings.ToLower(strings.Join(parts, "-")), "-")
	return strings.Trim(n, "-.")
}

func (p *pushOptions) run(ctx context.Context, c client.Client, ns, file string, out, errOut io.Writer) error {
	sm := otav1.SignMethod(p.signMethod)
	if sm != otav1.SignMethodMD5 && sm != otav1.SignMethodSHA256 {
		return fmt.Errorf("--sign-method must be Md5 or Sha256, not %q", p.signMethod)
	}
	sum, size, err := fileSHA256(file)
	if err != nil {
		return err
	}
	if p.name == "" {
		p.name = firmwareName(p.product, p.module, p.version)
	}
	fw := &otav1.Firmware{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: p.name},
		Spec: otav1.FirmwareSpec{Product: p.product, Module: p.module, Version: p.version, SignMethod: sm,
			Description: p.description, Source: otav1.FirmwareSource{Upload: &otav1.UploadSource{SHA256: sum}}},
	}
	created, err := createOrResume(ctx, c, fw)
	if err != nil {
		return err
	}
	verb := "created"
	if !created {
		verb = "exists (resuming)"
	}
	fmt.Fprintf(out, "firmware/%s %s\n", fw.Name, verb)
	if fw.Status.Artifact == nil {
		if err := p.upload(ctx, c, fw, file, size, errOut); err != nil {
			return err
		}
	}
	if err := waitFirmware(ctx, c, fw, p.timeout, func(f *otav1.Firmware) (bool, error) {
		if apimeta.IsStatusConditionTrue(f.Status.Conditions, otav1.ConditionReady) {
			return true, nil
		}
		if cond := apimeta.FindStatusCondition(f.Status.Conditions, otav1.ConditionStalled); cond != nil && cond.Status == metav1.ConditionTrue {
			return false, fmt.Errorf("firmware/%s cannot become ready: %s: %s", f.Name, cond.Reason, cond.Message)
		}
		return false, nil
	}); err != nil {
		return err
	}
	a := fw.Status.Artifact
	if a == nil {
		return fmt.Errorf("firmware/%s is Ready without an artifact", fw.Name)
	}
	fmt.Fprintf(out, "firmware/%s ready\n  size:    %d\n  md5:     %s\n  sha256:  %s\n  object:  s3://%s/%s\n",
		fw.Name, a.Size, a.MD5, a.SHA256, a.Bucket, a.Key)
	if a.SHA256 != sum {
		return fmt.Errorf("stored image sha256 %s differs from the file's %s", a.SHA256, sum)
	}
	return nil
}

// createOrResume creates the Firmware, or picks up one left by an
// interrupted push of the same file, so a push can simply be run again.
func createOrResume(ctx context.Context, c client.Client, fw *otav1.Firmware) (created bool, err error) {
	err = c.Create(ctx, fw, fieldOwner)
	if !apierrors.IsAlreadyExists(err) {
		return err == nil, err
	}
	want := fw.Spec
	if err := c.Get(ctx, client.ObjectKeyFromObject(fw), fw); err != nil {
		return false, err
	}
	s := fw.Spec
	if s.Product != want.Product || s.Module != want.Module || s.Version != want.Version ||
		s.Source.Upload == nil || s.Source.Upload.SHA256 != want.Source.Upload.SHA256 {
		return false, fmt.Errorf("firmware/%s already exists for another image; pick another --name", fw.Name)
	}
	return false, nil
}

func (p *pushOptions) upload(ctx context.Context, c client.Client, fw *otav1.Firmware, file string, size int64, errOut io.Writer) error {
	if err := waitFirmware(ctx, c, fw, p.timeout, func(f *otav1.Firmware) (bool, error) {
		return f.Status.Artifact != nil || (f.Status.Upload != nil && f.Status.Upload.URL != ""), nil
	}); err != nil {
		return fmt.Errorf("waiting for the upload URL (is the manager running?): %w", err)
	}
	if fw.Status.Artifact != nil {
		return nil // stored by an earlier attempt
	}
	return putFile(ctx, fw.Status.Upload.URL, file, size, errOut)
}

// waitFirmware polls the Firmware until cond holds, cond fails, or timeout.
func waitFirmware(ctx context.Context, c client.Client, fw *otav1.Firmware, timeout time.Duration, cond func(*otav1.Firmware) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		if err := c.Get(ctx, client.ObjectKeyFromObject(fw), fw); err != nil {
			return err
		}
		if ok, err := cond(fw); ok || err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("firmware/%s: %w", fw.Name, ctx.Err())
		case <-t.C:
		}
	}
}

func fileSHA256(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	if n == 0 {
		return "", 0, fmt.Errorf("%s is empty", path)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}
