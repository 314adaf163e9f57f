-- Argo CD health of a rollguard RollbackPolicy (rollguard.dev/RollbackPolicy).
local hs = {status = "Progressing", message = "Waiting for rollguard to load the policy"}
if obj.status == nil or obj.status.conditions == nil then return hs end
if obj.status.observedGeneration ~= nil and obj.metadata.generation ~= nil
    and obj.status.observedGeneration < obj.metadata.generation then
  return hs
end
for _, c in ipairs(obj.status.conditions) do
  if c.type == "Invalid" and c.status == "True" then
    hs.status = "Degraded"
    hs.message = "Invalid: " .. (c.message or "")
    return hs
  end
end
for _, c in ipairs(obj.status.conditions) do
  if c.type == "Ready" and c.status == "True" then
    hs.status = "Healthy"
    hs.message = c.message or "Ready"
    return hs
  end
end
return hs
