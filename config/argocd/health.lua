-- Argo CD health check for the otafleet kinds (ota.otafleet.dev). It gives
-- the verdicts kstatus gives (Flux health checks, kubectl wait), so that
-- both GitOps tools agree: Reconciling=True is Progressing, Stalled=True is
-- Degraded, Ready=True is Healthy. A batch paused by spec.paused, or held
-- after a wave until someone promotes it, is Suspended: it waits for a human,
-- as a paused Argo Rollout does.
local hs = {}
if obj.status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the controller to report status"
  return hs
end
local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and observed ~= nil and observed ~= generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the controller to observe generation " .. generation
  return hs
end
local conditions = {}
if obj.status.conditions ~= nil then
  for _, c in ipairs(obj.status.conditions) do
    conditions[c.type] = c
  end
end
local reconciling = conditions["Reconciling"]
if reconciling ~= nil and reconciling.status == "True" then
  hs.status = "Progressing"
  hs.message = reconciling.message
  -- A timed wave pause ends by itself (status.pausedUntil is set); a
  -- promotion, like spec.paused, needs someone.
  local waitsForHuman = reconciling.reason == "Paused" or
    (reconciling.reason == "WavePaused" and obj.status.pausedUntil == nil)
  if obj.kind == "UpgradeBatch" and waitsForHuman then
    hs.status = "Suspended"
  end
  return hs
end
local stalled = conditions["Stalled"]
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = stalled.message
  return hs
end
local ready = conditions["Ready"]
if ready ~= nil and ready.status ~= "True" then
  hs.status = "Progressing"
  hs.message = ready.message
  return hs
end
hs.status = "Healthy"
if ready ~= nil then
  hs.message = ready.message
end
return hs
