package cli

import (
	"fmt"
	"strconv"
	"strings"
)

// cronField is one field of a 5-field cron expression and its range.
type cronField struct {
	name   string
	lo, hi int
	note   string
}

// cronFields are the fields of the alarm's and the Code Engine cron subscription's
// expressions, in order. Day-of-week is 0-6 with 0 for Sunday: the Code Engine
// subscription's parser refuses 7.
var cronFields = []cronField{
	{name: "minute", lo: 0, hi: 59},
	{name: "hour", lo: 0, hi: 23},
	{name: "day-of-month", lo: 1, hi: 31},
	{name: "month", lo: 1, hi: 12},
	{name: "day-of-week", lo: 0, hi: 6, note: " (0 is Sunday)"},
}

// cronProblems checks a 5-field cron expression (numbers, *, lists, ranges and steps
// of * or of a range) and returns one line per problem: the field, the rule it
// breaks, and the expression as given (it is not a secret; control characters are
// shown as spaces).
func cronProblems(expr string) []string {
	shown := `"` + clean(expr) + `"`
	fields := strings.Fields(expr)
	if len(fields) != len(cronFields) {
		return []string{fmt.Sprintf("--cron %s: must have 5 fields (minute hour day-of-month month day-of-week), has %d", shown, len(fields))}
	}
	var problems []string
	for i, s := range fields {
		if err := cronFields[i].check(s); err != "" {
			problems = append(problems, fmt.Sprintf("--cron %s: field %d (%s) %s", shown, i+1, cronFields[i].name, err))
		}
	}
	return problems
}

// check returns what is wrong with s, or "".
func (f cronField) check(s string) string {
	for _, item := range strings.Split(s, ",") {
		if item == "" {
			return "has an empty item in its list"
		}
		base, step, stepped := strings.Cut(item, "/")
		if stepped {
			n, ok := cronNumber(step)
			if !ok || n < 1 || n > f.hi-f.lo+1 {
				return fmt.Sprintf("has the step /%s; a step is a number from 1 to %d", clean(step), f.hi-f.lo+1)
			}
		}
		lo, hi, ranged := strings.Cut(base, "-")
		switch {
		case base == "*":
		case ranged:
			a, errA := f.number(lo)
			if errA != "" {
				return errA
			}
			b, errB := f.number(hi)
			if errB != "" {
				return errB
			}
			if a > b {
				return fmt.Sprintf("has the range %d-%d, which ends before it starts", a, b)
			}
		default:
			if _, err := f.number(base); err != "" {
				return err
			}
			if stepped {
				return fmt.Sprintf("has the step %s; a step follows * or a range (*/15, 0-30/5)", clean(item))
			}
		}
	}
	return ""
}

// number parses one value of the field.
func (f cronField) number(s string) (int, string) {
	n, ok := cronNumber(s)
	if !ok {
		return 0, fmt.Sprintf("has \"%s\"; its values are numbers from %d to %d%s, *, lists (a,b), ranges (a-b) and steps (*/n, a-b/n)", clean(s), f.lo, f.hi, f.note)
	}
	if n < f.lo || n > f.hi {
		return 0, fmt.Sprintf("has %d, out of its range %d-%d%s", n, f.lo, f.hi, f.note)
	}
	return n, ""
}

// cronNumber parses a plain decimal number: digits only, no sign.
func cronNumber(s string) (int, bool) {
	if s == "" || len(s) > 4 || strings.Trim(s, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil
}
