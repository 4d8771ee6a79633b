package main

import (
	"fmt"

	"github.com/certbackup/certbackup/test/deploy/fakecloud"
)

// The global options of the Secrets Manager CLI (secrets-manager-cli.md, "Globals").
var smGlobal = spec{"instance-id": str, "region": str, "output": str, "jmes-query": str, "service-url": str, "quiet": boolean}

// secretsManager is `ibmcloud secrets-manager notifications-registration[-create|-delete|-test]`.
func (c *cloud) secretsManager(args []string) error {
	if len(args) == 0 {
		return fail(2, "secrets-manager: want a command")
	}
	cmd := args[0]
	sp := smGlobal
	if cmd == "notifications-registration-create" {
		sp = join(smGlobal, spec{"event-notifications-instance-crn": str, "event-notifications-source-name": str, "event-notifications-source-description": str})
	}
	f, err := parseFlags(args[1:], sp)
	if err != nil {
		return fail(2, "secrets-manager %s: %v", cmd, err)
	}
	if err := f.require("instance-id", "region"); err != nil {
		return fail(2, "secrets-manager %s: %v (deploy.sh must not rely on 'secrets-manager config set')", cmd, err)
	}
	sm := c.SMInstances[f.get("instance-id")]
	if sm == nil || sm.Region != f.get("region") {
		return fail(1, "FAILED\nSecrets Manager instance %s not found in region %q", f.get("instance-id"), f.get("region"))
	}

	switch cmd {
	case "notifications-registration":
		if sm.Registration == nil {
			return fail(1, "FAILED\nStatus code: 404\nNot found: the instance is not registered with Event Notifications")
		}
		if f.get("output") == "json" {
			return printJSON(map[string]string{"event_notifications_instance_crn": sm.Registration.ENInstanceCRN})
		}
		fmt.Printf("event_notifications_instance_crn   %s\n", sm.Registration.ENInstanceCRN)
		return nil
	case "notifications-registration-create":
		if err := f.require("event-notifications-instance-crn", "event-notifications-source-name"); err != nil {
			return fail(2, "%s: %v", cmd, err)
		}
		if sm.Registration != nil {
			return fail(1, "FAILED\nStatus code: 409\nThe instance is already registered with Event Notifications")
		}
		_, en := c.ENInstanceByCRN(f.get("event-notifications-instance-crn"))
		if en == nil {
			return fail(1, "FAILED\nStatus code: 400\nEvent Notifications instance %s not found (or no Event Source Manager authorization)", f.get("event-notifications-instance-crn"))
		}
		sm.Registration = &fakecloud.SMRegistration{
			ENInstanceCRN:     f.get("event-notifications-instance-crn"),
			SourceName:        f.get("event-notifications-source-name"),
			SourceDescription: f.get("event-notifications-source-description"),
		}
		en.Sources = append(en.Sources, &fakecloud.ENSource{ID: sm.CRN, Name: sm.Registration.SourceName,
			Description: sm.Registration.SourceDescription, Type: "secrets-manager", Enabled: true})
		if f.get("output") == "json" {
			return printJSON(map[string]string{"event_notifications_instance_crn": sm.Registration.ENInstanceCRN})
		}
		fmt.Println("OK")
		return nil
	case "notifications-registration-delete":
		if sm.Registration == nil {
			return fail(1, "FAILED\nStatus code: 404\nNot found")
		}
		if _, en := c.ENInstanceByCRN(sm.Registration.ENInstanceCRN); en != nil {
			if n := topicCount(en, sm.CRN); n > 0 {
				return fail(1, "FAILED\nStatus code: 409\nthe source is used by %d topic(s)", n)
			}
			for i, s := range en.Sources {
				if s.ID == sm.CRN {
					en.Sources = append(en.Sources[:i], en.Sources[i+1:]...)
					if len(en.Sources) == 0 {
						en.Sources = nil
					}
					break
				}
			}
		}
		sm.Registration = nil
		fmt.Println("OK")
		return nil
	case "notifications-registration-test":
		if sm.Registration == nil {
			return fail(1, "FAILED\nStatus code: 404\nNot found")
		}
		fmt.Println("OK")
		return nil
	}
	return fail(2, "secrets-manager: %q is not simulated", cmd)
}
