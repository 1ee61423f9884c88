package main

import (
	"context"
	"errors"
	"fmt"
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

// cluster is a throwaway PostgreSQL cluster in a temp dir on a free
// loopback port: the suite restarts and kills it, which it must never do to
// the machine's server or to the one other tests share.
type cluster struct {
	bindir string
	dir    string // owned by the postgres OS user when we run as root
	port   int
	cred   *syscall.Credential // postgres's uid/gid when we run as root
}

// pgBindir is where initdb and pg_ctl live: `pg_config --bindir`, else the
// Debian path of PostgreSQL 15.
func pgBindir() (string, error) {
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

// startCluster runs initdb and starts the server. initdb and pg_ctl refuse
// to run as root, so as root they run as the postgres OS user, in a dir it
// owns.
func startCluster(ctx context.Context) (*cluster, error) {
	bindir, err := pgBindir()
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "herald-chaos-pg-")
	if err != nil {
		return nil, err
	}
	c := &cluster{bindir: bindir, dir: dir, port: port}
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
	// Durability is not under test (the suite restarts the server, it does
	// not crash the machine), so fsync is off for speed.
	conf := fmt.Sprintf(`listen_addresses = '127.0.0.1'
port = %d
unix_socket_directories = '%s'
fsync = off
full_page_writes = off
max_connections = 200
shared_buffers = 64MB
logging_collector = off
`, port, c.dir)
	f, err := os.OpenFile(filepath.Join(c.data(), "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err == nil {
		_, err = f.WriteString(conf)
		f.Close()
	}
	if err != nil {
		c.remove()
		return nil, err
	}
	if out, err := c.pg(ctx, "pg_ctl", "-D", c.data(), "-l", c.logPath(), "-w", "-t", "60", "start"); err != nil {
		c.remove()
		return nil, fmt.Errorf("pg_ctl start: %v: %s", err, out)
	}
	return c, nil
}

func (c *cluster) data() string    { return filepath.Join(c.dir, "data") }
func (c *cluster) logPath() string { return filepath.Join(c.dir, "server.log") }

// pg runs a server program of the cluster as its owner.
func (c *cluster) pg(ctx context.Context, prog string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(c.bindir, prog), args...)
	cmd.Dir = c.dir
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	return cmd.CombinedOutput()
}

// url is the DSN of database db on this cluster.
func (c *cluster) url(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, db)
}

// addr is the server's host:port, for a proxy in front of it.
func (c *cluster) addr() string { return "127.0.0.1:" + strconv.Itoa(c.port) }

// createDB creates an empty database; each scenario has its own.
func (c *cluster) createDB(ctx context.Context, name string) error {
	conn, err := pgx.Connect(ctx, c.url("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	return err
}

// restart restarts the server with pg_ctl's shutdown mode: fast (clients
// disconnected, clean checkpoint) or immediate (no checkpoint: crash
// recovery at start).
func (c *cluster) restart(ctx context.Context, mode string) error {
	if out, err := c.pg(ctx, "pg_ctl", "-D", c.data(), "-l", c.logPath(), "-m", mode, "-w", "-t", "60", "restart"); err != nil {
		return fmt.Errorf("pg_ctl restart -m %s: %v: %s", mode, err, out)
	}
	return nil
}

// stop stops the server and removes its directory. Safe to call twice.
func (c *cluster) stop() {
	if c == nil || c.dir == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, _ = c.pg(ctx, "pg_ctl", "-D", c.data(), "-m", "immediate", "-w", "stop")
	c.remove()
}

func (c *cluster) remove() {
	os.RemoveAll(c.dir)
	c.dir = ""
}
