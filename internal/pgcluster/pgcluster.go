// Package pgcluster starts throwaway PostgreSQL clusters (initdb in a temp
// dir, on a free loopback port) for programs that restart or kill the
// server: the chaos suite, the benchmark's restart phase and the relay's
// restart tests. They must never do that to the machine's server or to the
// one other tests share.
package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Cluster is a running throwaway cluster. Stop it (and remove its files)
// with Stop.
type Cluster struct {
	bindir string
	dir    string // owned by the postgres OS user when we run as root
	port   int
	cred   *syscall.Credential // postgres's uid/gid when we run as root
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// Bindir is where initdb and pg_ctl live: `pg_config --bindir`, else the
// Debian path of PostgreSQL 15.
func Bindir() (string, error) {
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		dir := strings.TrimSpace(string(out))
		if _, err := os.Stat(filepath.Join(dir, "initdb")); err == nil {
			return dir, nil
		}
	}
	const fallback = "/usr/lib/postgresql/15/bin"
	if _, err := os.Stat(filepath.Join(fallback, "initdb")); err != nil {
		return "", errors.New("initdb not found: install PostgreSQL's server binaries (pg_config --bindir)")
	}
	return fallback, nil
}

// Start runs initdb and starts the server. initdb and pg_ctl refuse to run
// as root, so as root they run as the postgres OS user, in a dir it owns.
// extraConf is appended to postgresql.conf (one setting per line).
func Start(ctx context.Context, extraConf string) (*Cluster, error) {
	bindir, err := Bindir()
	if err != nil {
		return nil, err
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "herald-pg-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{bindir: bindir, dir: dir, port: port}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("running as root needs a postgres OS user for initdb: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	if out, err := c.pg(ctx, "initdb", "-D", c.data(), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"); err != nil {
		c.remove()
		return nil, fmt.Errorf("initdb: %v: %s", err, out)
	}
	// Durability is not under test (callers restart the server, they do
	// not crash the machine), so fsync is off for speed.
	conf := fmt.Sprintf(`listen_addresses = '127.0.0.1'
port = %d
unix_socket_directories = '%s'
fsync = off
full_page_writes = off
max_connections = 200
shared_buffers = 64MB
logging_collector = off
%s
`, port, c.dir, extraConf)
	f, err := os.OpenFile(filepath.Join(c.data(), "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err == nil {
		_, err = f.WriteString(conf)
		f.Close()
	}
	if err != nil {
		c.remove()
		return nil, err
	}
	if out, err := c.pg(ctx, "pg_ctl", "-D", c.data(), "-l", c.LogPath(), "-w", "-t", "60", "start"); err != nil {
		c.remove()
		return nil, fmt.Errorf("pg_ctl start: %v: %s", err, out)
	}
	return c, nil
}

func (c *Cluster) data() string { return filepath.Join(c.dir, "data") }

// LogPath is the server's log file.
func (c *Cluster) LogPath() string { return filepath.Join(c.dir, "server.log") }

// pg runs a server program of the cluster as its owner.
func (c *Cluster) pg(ctx context.Context, prog string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(c.bindir, prog), args...)
	cmd.Dir = c.dir
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	return cmd.CombinedOutput()
}

// URL is the DSN of database db on this cluster.
func (c *Cluster) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, db)
}

// Addr is the server's host:port, for a proxy in front of it.
func (c *Cluster) Addr() string { return "127.0.0.1:" + strconv.Itoa(c.port) }

// CreateDB creates an empty database.
func (c *Cluster) CreateDB(ctx context.Context, name string) error {
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	return err
}

// Restart restarts the server with pg_ctl's shutdown mode: fast (clients
// disconnected, clean checkpoint) or immediate (no checkpoint: crash
// recovery at start). It returns once the server accepts connections
// again (pg_ctl -w).
func (c *Cluster) Restart(ctx context.Context, mode string) error {
	if out, err := c.pg(ctx, "pg_ctl", "-D", c.data(), "-l", c.LogPath(), "-m", mode, "-w", "-t", "60", "restart"); err != nil {
		return fmt.Errorf("pg_ctl restart -m %s: %v: %s", mode, err, out)
	}
	return nil
}

// Stop stops the server and removes its directory. Safe to call twice and
// on nil.
func (c *Cluster) Stop() {
	if c == nil || c.dir == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, _ = c.pg(ctx, "pg_ctl", "-D", c.data(), "-m", "immediate", "-w", "stop")
	c.remove()
}

func (c *Cluster) remove() {
	os.RemoveAll(c.dir)
	c.dir = ""
}
