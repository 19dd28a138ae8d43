// Command imagebuild writes the manager's container image as a tarball
// without a Docker engine, for CI and users who have none (`make image`;
// `docker load` or `podman load` reads it, crane pushes it). The image is
// what the Dockerfile builds on distroless/static:nonroot, which cannot be
// fetched here: the static binary at /manager, the build machine's CA
// certificates, an /etc/passwd naming the nonroot user, and a config that
// runs /manager as 65532:65532.
//
// It is its own module so that go-containerregistry stays out of the
// operator's dependencies.
package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const (
	entrypoint = "/manager"
	nonroot    = "65532:65532"
)

func main() {
	binary := flag.String("binary", "", "the manager binary, built static for linux (CGO_ENABLED=0)")
	out := flag.String("out", "", "the image tarball to write")
	tag := flag.String("tag", "otafleet/manager:dev", "the image's name in the tarball")
	arch := flag.String("arch", "amd64", "the binary's architecture")
	caFile := flag.String("ca", "/etc/ssl/certs/ca-certificates.crt", "CA certificates to install")
	check := flag.String("check", "", "only check that this tarball's config runs "+entrypoint+" as "+nonroot)
	flag.Parse()
	var err error
	if *check != "" {
		err = checkImage(*check)
	} else {
		err = build(*binary, *caFile, *arch, *tag, *out)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "imagebuild:", err)
		os.Exit(1)
	}
}

func build(binary, caFile, arch, tag, out string) error {
	if binary == "" || out == "" {
		return errors.New("-binary and -out are required")
	}
	ref, err := name.NewTag(tag)
	if err != nil {
		return err
	}
	img, err := image(binary, caFile, arch)
	if err != nil {
		return err
	}
	return tarball.WriteToFile(out, ref, img)
}

// image puts the layer on an empty base with an OCI manifest and config.
func image(binary, caFile, arch string) (v1.Image, error) {
	layer, err := rootLayer(binary, caFile)
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), layer)
	if err != nil {
		return nil, err
	}
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", arch
	cfg.Config.Entrypoint = []string{entrypoint}
	cfg.Config.User = nonroot
	cfg.Config.WorkingDir = "/"
	cfg.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"}
	return mutate.ConfigFile(img, cfg)
}

// rootLayer is the image's only layer. Times are fixed so that the same
// binary gives the same image digest.
func rootLayer(binary, caFile string) (v1.Layer, error) {
	bin, err := os.ReadFile(binary)
	if err != nil {
		return nil, err
	}
	ca, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("CA certificates: %w", err)
	}
	files := []struct {
		path string
		mode int64
		data []byte
	}{
		{"etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")},
		{"etc/group", 0o644, []byte("root:x:0:\nnonroot:x:65532:\n")},
		{"etc/ssl/certs/ca-certificates.crt", 0o644, ca},
		{entrypoint[1:], 0o755, bin},
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Unix(0, 0)
	for _, dir := range []string{"etc/", "etc/ssl/", "etc/ssl/certs/", "home/", "tmp/"} {
		mode := int64(0o755)
		if dir == "tmp/" {
			mode = 0o1777
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir, Mode: mode, ModTime: epoch}); err != nil {
			return nil, err
		}
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "home/nonroot/", Mode: 0o700,
		Uid: 65532, Gid: 65532, ModTime: epoch}); err != nil {
		return nil, err
	}
	for _, f := range files {
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: f.path, Mode: f.mode, Size: int64(len(f.data)), ModTime: epoch}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithMediaType(types.OCILayer))
}

// checkImage reads a tarball back and checks what Kubernetes will run.
func checkImage(path string) error {
	img, err := tarball.ImageFromPath(path, nil)
	if err != nil {
		return err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return err
	}
	if ep := cfg.Config.Entrypoint; len(ep) != 1 || ep[0] != entrypoint {
		return fmt.Errorf("%s: entrypoint %q, want [%s]", path, ep, entrypoint)
	}
	if cfg.Config.User != nonroot {
		return fmt.Errorf("%s: user %q, want %s", path, cfg.Config.User, nonroot)
	}
	fmt.Printf("%s: runs %s as %s (%s/%s)\n", path, entrypoint, nonroot, cfg.OS, cfg.Architecture)
	return nil
}
