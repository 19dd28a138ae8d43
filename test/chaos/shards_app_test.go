package chaos

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/golang-jwt/jwt/v5"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/appapi"
	"github.com/otafleet/otafleet/internal/lab"
)

const appIssuer = "chaos-app-backend"

// appAPI is every replica's app API: a port each, the same across
// restarts, and the secret tokens are signed with.
type appAPI struct {
	secret []byte
	ports  map[int]int
}

// withAppAPI makes every replica serve the app API, advertising its own
// address to the others for forwarding.
func (r *rig) withAppAPI(ctx context.Context) *appAPI {
	a := &appAPI{secret: make([]byte, 32), ports: map[int]int{}}
	_, _ = rand.Read(a.secret)
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: systemNS, Name: "otafleet-app-api"},
		Data: map[string][]byte{"hmac-secret": a.secret}}
	if err := r.c.Create(ctx, s); err != nil {
		r.t.Fatal(err)
	}
	r.replicaArgs = func(i int) []string {
		if a.ports[i] == 0 {
			port, err := freePort()
			if err != nil {
				r.t.Fatal(err)
			}
			a.ports[i] = port
		}
		addr := "127.0.0.1:" + strconv.Itoa(a.ports[i])
		return []string{"--app-api-bind-address", addr, "--app-api-advertise-url", "http://" + addr,
			"--app-api-keys-secret", systemNS + "/otafleet-app-api", "--app-api-issuer", appIssuer}
	}
	return a
}

func (a *appAPI) token(devices ...string) (string, error) {
	now := time.Now()
	claims := appapi.Claims{RegisteredClaims: jwt.RegisteredClaims{Issuer: appIssuer, Audience: jwt.ClaimStrings{"otafleet"},
		Subject: "chaos-user", IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour))},
		Devices: devices}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(a.secret)
}

// checkAppAPI asks every live replica's app API, while the batches run,
// for a device of every line whose upgrade is over: each answers (itself,
// or through the product's owner) with the state the device's task has in
// the UpgradeSlices. It returns the mismatches.
func (r *rig) checkAppAPI(ctx context.Context, a *appAPI, lines []*line) int {
	bad := 0
	for _, l := range lines {
		device, want, err := r.finishedTask(ctx, l)
		if err != nil {
			r.t.Errorf("%s: %v", l.key, err)
			bad++
			continue
		}
		token, err := a.token(l.key + "/" + device)
		if err != nil {
			r.t.Fatal(err)
		}
		for i, p := range r.managers {
			if p.exited() {
				continue
			}
			// A product that just moved is answered 503 until every
			// replica saw its new owner (a round); apps retry as told.
			var got otav1.TaskState
			var callErr error
			_ = lab.Poll(ctx, 10*time.Second, func() (bool, error) {
				got, callErr = progressState(ctx, a.ports[i], token, l.key, device)
				return callErr == nil, nil
			})
			if err := callErr; err != nil || got != want {
				r.t.Errorf("replica %d's app API on %s/%s: state %q (%v), the UpgradeSlice says %q", i, l.key, device, got, err, want)
				bad++
			}
		}
	}
	return bad
}

// finishedTask finds in the line's UpgradeSlices a device whose task is
// over (SUCCEEDED: it stays so), and returns it and its state.
func (r *rig) finishedTask(ctx context.Context, l *line) (string, otav1.TaskState, error) {
	var list otav1.UpgradeSliceList
	if err := r.c.List(ctx, &list, client.InNamespace(l.ns)); err != nil {
		return "", "", err
	}
	for _, s := range list.Items {
		for _, t := range s.Tasks {
			if t.State == otav1.TaskSucceeded {
				return t.Device, t.State, nil
			}
		}
	}
	return "", "", fmt.Errorf("no device succeeded yet")
}

// progressState calls progress/get on one replica's app API.
func progressState(ctx context.Context, port int, token, pk, device string) (otav1.TaskState, error) {
	body, _ := json.Marshal(appapi.DeviceRef{ProductKey: pk, DeviceName: device})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://127.0.0.1:"+strconv.Itoa(port)+appapi.PathProgressGet,
		bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct {
		Code    int                 `json:"code"`
		Message string              `json:"message"`
		Data    appapi.ProgressItem `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", resp.Status, out.Message)
	}
	return out.Data.State, nil
}
