package devicesim

// PlanFor exposes the plan of a device for an attempt to the tests, without
// starting a fleet.
func PlanFor(cfg Config, name string, attempt int) Plan { return cfg.plan(name, attempt) }
