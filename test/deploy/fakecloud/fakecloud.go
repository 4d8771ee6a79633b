// Package fakecloud is the state of the pretend IBM Cloud that test/deploy's stand-in
// CLI (test/deploy/standin) reads and writes: Code Engine projects and what is in them,
// Event Notifications instances, and Secrets Manager instances with their Event
// Notifications registration. Tests seed it, run deploy.sh and compare it before and
// after, so it is plain data with a deterministic JSON encoding (maps are written in
// key order).
//
// It holds test secrets in clear (what deploy.sh wrote into a Code Engine secret, the
// header of a webhook destination) so that tests can check them; it lives only in a
// test's temporary directory.
package fakecloud

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// FileName is the name of the state file inside the directory named by STUB_STATE.
const FileName = "state.json"

// State is the whole pretend cloud.
type State struct {
	Region      string                 `json:"region"`           // `ibmcloud target -r`
	Selected    string                 `json:"selected_project"` // `ibmcloud ce project select|create`
	Projects    map[string]*Project    `json:"projects"`         // by name
	ENInstances map[string]*ENInstance `json:"en_instances"`     // by GUID
	SMInstances map[string]*SMInstance `json:"sm_instances"`     // by GUID
	Seq         int                    `json:"seq"`              // last id handed out
}

// Project is a Code Engine project.
type Project struct {
	Region     string               `json:"region"`
	Secrets    map[string]*KeyValue `json:"secrets"`
	ConfigMaps map[string]*KeyValue `json:"configmaps"`
	Apps       map[string]*Workload `json:"apps"`
	Jobs       map[string]*Workload `json:"jobs"`
	Crons      map[string]*Cron     `json:"crons"`
}

// KeyValue is a Code Engine secret or configmap.
type KeyValue struct {
	Data map[string]string `json:"data"`
}

// Workload is a Code Engine application or job.
type Workload struct {
	Revision         int               `json:"revision"` // 1 at create, +1 per update
	BuildSource      string            `json:"build_source"`
	BuildStrategy    string            `json:"build_strategy"`
	Arguments        []string          `json:"arguments"`
	Port             string            `json:"port,omitempty"`
	Concurrency      string            `json:"concurrency,omitempty"`
	ProbeReady       []string          `json:"probe_ready,omitempty"`
	Env              map[string]string `json:"env"`
	EnvFromSecret    []string          `json:"env_from_secret"`
	EnvFromConfigMap []string          `json:"env_from_configmap"`
	URL              string            `json:"url,omitempty"` // applications only
}

// Cron is a Code Engine cron (periodic timer) subscription.
type Cron struct {
	Destination     string `json:"destination"`
	DestinationType string `json:"destination_type"`
	Schedule        string `json:"schedule"`
	TimeZone        string `json:"time_zone"`
}

// ENInstance is an Event Notifications instance.
type ENInstance struct {
	CRN           string            `json:"crn"`
	Region        string            `json:"region"`
	Sources       []*ENSource       `json:"sources"`
	Destinations  []*ENDestination  `json:"destinations"`
	Topics        []*ENTopic        `json:"topics"`
	Subscriptions []*ENSubscription `json:"subscriptions"`
}

// ENSource is a source of an Event Notifications instance (a registered Secrets
// Manager instance: its id is the instance's CRN).
type ENSource struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description"`
	Type        string `json:"type"`
	Enabled     bool   `json:"enabled"`
}

// ENDestination is a destination; Config is kept as given, sensitive headers included.
type ENDestination struct {
	ID          string          `json:"id"`
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Type        string          `json:"type"`
	Config      json.RawMessage `json:"config"`
}

// ENTopic is a topic; Sources is the --sources JSON as given.
type ENTopic struct {
	ID          string          `json:"id"`
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Sources     json.RawMessage `json:"sources"`
}

// ENSubscription is a subscription of a destination to a topic.
type ENSubscription struct {
	ID            string          `json:"id"`
	Name          string          `json:"name"`
	Description   string          `json:"description"`
	DestinationID string          `json:"destination_id"`
	TopicID       string          `json:"topic_id"`
	Attributes    json.RawMessage `json:"attributes,omitempty"`
}

// SMInstance is a Secrets Manager instance.
type SMInstance struct {
	CRN          string          `json:"crn"`
	Region       string          `json:"region"`
	Registration *SMRegistration `json:"registration,omitempty"`
}

// SMRegistration is the instance's registration with an Event Notifications instance.
type SMRegistration struct {
	ENInstanceCRN     string `json:"event_notifications_instance_crn"`
	SourceName        string `json:"event_notifications_source_name"`
	SourceDescription string `json:"event_notifications_source_description"`
}

// New returns an empty cloud.
func New() *State {
	return &State{
		Projects:    map[string]*Project{},
		ENInstances: map[string]*ENInstance{},
		SMInstances: map[string]*SMInstance{},
	}
}

// NewProject returns an empty project in region.
func NewProject(region string) *Project {
	return &Project{
		Region:     region,
		Secrets:    map[string]*KeyValue{},
		ConfigMaps: map[string]*KeyValue{},
		Apps:       map[string]*Workload{},
		Jobs:       map[string]*Workload{},
		Crons:      map[string]*Cron{},
	}
}

// Load reads the state in dir; a missing file is an empty cloud.
func Load(dir string) (*State, error) {
	data, err := os.ReadFile(filepath.Join(dir, FileName))
	if errors.Is(err, os.ErrNotExist) {
		return New(), nil
	}
	if err != nil {
		return nil, err
	}
	s := New()
	if err := json.Unmarshal(data, s); err != nil {
		return nil, fmt.Errorf("%s: %w", FileName, err)
	}
	return s, nil
}

// Save writes the state to dir, replacing the file atomically.
func (s *State) Save(dir string) error {
	data, err := s.Encode()
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, FileName+".*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), filepath.Join(dir, FileName))
}

// Encode is the state's canonical JSON: equal states encode to equal bytes.
func (s *State) Encode() ([]byte, error) {
	return json.MarshalIndent(s, "", "  ")
}

// NextID hands out a new identifier in the UUID shape the Event Notifications CLI
// validates (8-4-4-4-12 hexadecimal digits).
func (s *State) NextID() string {
	s.Seq++
	return fmt.Sprintf("%08x-0000-4000-8000-%012x", s.Seq, s.Seq)
}

// ENInstanceByCRN finds an Event Notifications instance by its CRN.
func (s *State) ENInstanceByCRN(crn string) (guid string, in *ENInstance) {
	for g, i := range s.ENInstances {
		if i.CRN == crn {
			return g, i
		}
	}
	return "", nil
}
