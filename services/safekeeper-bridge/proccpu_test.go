package bridge

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of the CPU times in /proc/<pid>/stat
// (100 on every Linux architecture Go supports).
const clockTicks = 100

// procStat is the CPU time of one process from /proc/<pid>/stat: its own
// (utime+stime) and that of its children it has waited for (cutime+cstime).
type procStat struct {
	ppid         int
	self, waited time.Duration
}

func readProcStat(pid int) (procStat, bool) {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return procStat{}, false
	}
	// The command name may contain spaces: fields start after the last ')'.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return procStat{}, false
	}
	f := strings.Fields(string(data[i+1:]))
	// f[0] is field 3 (state); utime is field 14, stime 15, cutime 16, cstime 17.
	if len(f) < 15 {
		return procStat{}, false
	}
	num := func(k int) int64 { n, _ := strconv.ParseInt(f[k], 10, 64); return n }
	tick := func(n int64) time.Duration { return time.Duration(n) * time.Second / clockTicks }
	ppid, _ := strconv.Atoi(f[1])
	return procStat{ppid: ppid, self: tick(num(11) + num(12)), waited: tick(num(13) + num(14))}, true
}

// processCPU is the CPU time pid has used so far.
func processCPU(pid int) time.Duration {
	st, _ := readProcStat(pid)
	return st.self
}

// primaryCPU is the CPU time of a PostgreSQL server so far: the postmaster
// with every child it has reaped (walsenders of finished connections
// included) plus its live children (walsenders, walwriter, checkpointer).
func primaryCPU(dataDir string) time.Duration {
	data, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(data), "\n", 2)[0]))
	if err != nil {
		return 0
	}
	st, ok := readProcStat(pid)
	if !ok {
		return 0
	}
	total := st.self + st.waited
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if cs, ok := readProcStat(child); ok && cs.ppid == pid {
			total += cs.self
		}
	}
	return total
}

// waitedChildrenCPU is the CPU time of this process's children (and their
// descendants) that have exited and been waited for: pg_receivewal run
// through pgtest.Server.Run.
func waitedChildrenCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
