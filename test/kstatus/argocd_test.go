package kstatus

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	lua "github.com/yuin/gopher-lua"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

const healthScript = "../../config/argocd/health.lua"

// argoHealth runs the Argo CD health check on obj with gopher-lua, the
// interpreter Argo CD embeds, the way Argo CD does: obj is a global table
// and the script returns {status=..., message=...}.
func argoHealth(script string, obj map[string]any) (status, message string, err error) {
	L := lua.NewState(lua.Options{SkipOpenLibs: false})
	defer L.Close()
	L.SetGlobal("obj", toLua(L, obj))
	if err := L.DoString(script); err != nil {
		return "", "", err
	}
	hs, ok := L.Get(-1).(*lua.LTable)
	if !ok {
		return "", "", fmt.Errorf("health check returned %s, not a table", L.Get(-1).Type())
	}
	return lua.LVAsString(hs.RawGetString("status")), lua.LVAsString(hs.RawGetString("message")), nil
}

// toLua converts decoded JSON into Lua values as Argo CD's JSON decoder
// does: objects and arrays become tables, arrays indexed from 1.
func toLua(L *lua.LState, v any) lua.LValue {
	switch v := v.(type) {
	case map[string]any:
		t := L.NewTable()
		for k, child := range v {
			t.RawSetString(k, toLua(L, child))
		}
		return t
	case []any:
		t := L.NewTable()
		for _, child := range v {
			t.Append(toLua(L, child))
		}
		return t
	case string:
		return lua.LString(v)
	case bool:
		return lua.LBool(v)
	case int64:
		return lua.LNumber(v)
	case float64:
		return lua.LNumber(v)
	case nil:
		return lua.LNil
	}
	panic(fmt.Sprintf("toLua: unexpected %T", v))
}

// TestArgoCDConfigMapCarriesTheScript keeps the argocd-cm snippet users
// apply equal to the script the tests run.
func TestArgoCDConfigMapCarriesTheScript(t *testing.T) {
	script, err := os.ReadFile(healthScript)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(filepath.Dir(healthScript), "argocd-cm.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cm corev1.ConfigMap
	if err := yaml.UnmarshalStrict(data, &cm); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"Firmware", "Product", "UpgradeBatch", "VerificationRun"} {
		key := "resource.customizations.health.ota.otafleet.dev_" + kind
		if got, ok := cm.Data[key]; !ok || !bytes.Equal([]byte(got), script) {
			t.Errorf("argocd-cm.yaml: %s is missing or differs from %s", key, healthScript)
		}
	}
}
