package main

import (
	"bufio"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// clkTck is the kernel's USER_HZ: /proc/*/stat and /proc/stat count in it.
const clkTck = 100.0

// procCPU returns a process's user+system CPU seconds and its command name.
func procCPU(pid int) (string, float64, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", 0, false
	}
	s := string(b)
	l, r := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if l < 0 || r < l {
		return "", 0, false
	}
	f := strings.Fields(s[r+1:])
	if len(f) < 13 {
		return "", 0, false
	}
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	return s[l+1 : r], float64(ut+st) / clkTck, true
}

// peakRSSMiB reads VmHWM (peak resident set) of a live process.
func peakRSSMiB(pid int) float64 {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

// machineBusy returns the busy CPU seconds of the whole machine (all CPUs)
// from /proc/stat: everything but idle and iowait (guest is already in user).
func machineBusy() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	var busy uint64
	for i, v := range f[1:] {
		if i == 3 || i == 4 || i >= 8 {
			continue
		}
		n, _ := strconv.ParseUint(v, 10, 64)
		busy += n
	}
	return float64(busy) / clkTck
}

// cpuSnap is a reading of the CPU counters a measurement cares about.
type cpuSnap struct {
	at       time.Time
	relays   map[int]float64 // relay pid -> seconds
	receiver float64
	postgres map[int]float64
	machine  float64
}

func snapCPU(relayPIDs []int, receiverPID int) cpuSnap {
	s := cpuSnap{at: time.Now(), relays: map[int]float64{}, postgres: map[int]float64{}}
	for _, pid := range relayPIDs {
		if _, t, ok := procCPU(pid); ok {
			s.relays[pid] = t
		}
	}
	if receiverPID > 0 {
		_, s.receiver, _ = procCPU(receiverPID)
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if comm, t, ok := procCPU(pid); ok && comm == "postgres" {
			s.postgres[pid] = t
		}
	}
	s.machine = machineBusy()
	return s
}

// CPU is CPU seconds spent over a measured window, by component.
type CPU struct {
	Relay    float64 `json:"relay_s"`
	Receiver float64 `json:"receiver_s"`
	Postgres float64 `json:"postgres_s"`
	Machine  float64 `json:"machine_s"`
}

func cpuDiff(a, b cpuSnap) CPU {
	var c CPU
	for pid, t := range b.relays {
		c.Relay += t - a.relays[pid]
	}
	c.Receiver = b.receiver - a.receiver
	for pid, t := range b.postgres {
		c.Postgres += t - a.postgres[pid] // a backend born in the window counts from zero
	}
	c.Machine = b.machine - a.machine
	return c
}

// Machine describes where the numbers were measured.
type Machine struct {
	NProc      int               `json:"nproc"`
	CPUModel   string            `json:"cpu_model"`
	MemoryGiB  float64           `json:"memory_gib"`
	Kernel     string            `json:"kernel"`
	GoVersion  string            `json:"go_version"`
	Postgres   string            `json:"postgres_version"`
	PGSettings map[string]string `json:"postgres_settings"`
	LoadAvg    string            `json:"loadavg_at_start"`
}

func describeMachine() Machine {
	m := Machine{NProc: runtime.NumCPU(), GoVersion: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				m.CPUModel = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
				kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
				m.MemoryGiB = float64(int(kb/1048576*10+0.5)) / 10
			}
		}
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		m.LoadAvg = strings.TrimSpace(string(b))
	}
	if out, err := exec.Command("uname", "-r").Output(); err == nil {
		m.Kernel = strings.TrimSpace(string(out))
	}
	if out, err := exec.Command("go", "version").Output(); err == nil {
		m.GoVersion = strings.TrimSpace(string(out))
	}
	return m
}
