package cmsim

import "github.com/certbackup/certbackup/internal/devtools/simfault"

// Fault is a fault to inject (see simfault.Fault); the Simulator's Inject, RemoveFault,
// ClearFaults, SetLatency and SetSeed come from the embedded simfault.Set.
type Fault = simfault.Fault
