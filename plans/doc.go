// Package plans decodes piwall's plan language: HCL files in, a typed Plan
// (hosts, groups, allowlists, defaults, rollout) and hcl.Diagnostics out.
package plans
