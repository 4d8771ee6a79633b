package config

// EnvVar ties a parameter to the environment variables that set it where there are no
// parameters (the Code Engine application and job, the terminal command). The first
// name is the contract's; the others are older names still accepted.
type EnvVar struct {
	Param string
	Names []string
}

// Environment lists every parameter that can come from the environment. mode is not
// among them: the entry point decides it.
var Environment = []EnvVar{
	{"apikey", []string{"APIKEY", "CM_APIKEY"}},
	{"backup_apikey", []string{"BACKUP_APIKEY"}},
	{"source_instance_crn", []string{"SOURCE_INSTANCE_CRN"}},
	{"backup_instance_crns", []string{"BACKUP_INSTANCE_CRNS"}},
	{"source_public_key", []string{"SOURCE_PUBLIC_KEY"}},
	{"iam_url", []string{"IAM_URL"}},
	{"endpoints", []string{"ENDPOINTS", "CM_ENDPOINTS"}},
	{"private_endpoints", []string{"PRIVATE_ENDPOINTS"}},
	{"secret_group", []string{"SECRET_GROUP"}},
	{"webhook_secret", []string{"WEBHOOK_SECRET"}},
	{"ownership_key", []string{"OWNERSHIP_KEY"}},
	{"max_requests_per_second", []string{"MAX_REQUESTS_PER_SECOND"}},
	{"prune", []string{"PRUNE"}},
	{"dry_run", []string{"DRY_RUN"}},
	{"concurrency", []string{"CONCURRENCY"}},
	{"max_concurrency", []string{"MAX_CONCURRENCY"}},
}

// FromEnv builds the parameters of mode from the environment: for each parameter, the
// first of its variables that is set and not empty.
func FromEnv(mode string, getenv func(string) string) map[string]any {
	params := map[string]any{"mode": mode}
	for _, e := range Environment {
		for _, name := range e.Names {
			if v := getenv(name); v != "" {
				params[e.Param] = v
				break
			}
		}
	}
	return params
}

// EnvNames is the variables of param, "" when it has none.
func EnvNames(param string) []string {
	for _, e := range Environment {
		if e.Param == param {
			return e.Names
		}
	}
	return nil
}
