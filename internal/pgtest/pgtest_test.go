package pgtest

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { Main(m) }

func connect(t *testing.T, url string) (*pgx.Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return pgx.Connect(ctx, url)
}

func TestSharedDB(t *testing.T) {
	s := Shared(t)
	c, err := connect(t, s.DB(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	var n int
	if err := c.QueryRow(context.Background(), "SELECT 1").Scan(&n); err != nil || n != 1 {
		t.Fatalf("SELECT 1: got %d, %v", n, err)
	}
	if c, err := connect(t, s.PasswordURL("postgres", Password)); err != nil {
		t.Fatalf("right password: %v", err)
	} else {
		c.Close(context.Background())
	}
	if _, err := connect(t, s.PasswordURL("postgres", "wrong")); err == nil {
		t.Fatal("wrong password: connected")
	}
}

func TestStopStart(t *testing.T) {
	s := New(t)
	url := s.DB(t)
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := connect(t, url); err == nil {
		t.Fatal("connected to a stopped server")
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	c, err := connect(t, url)
	if err != nil {
		t.Fatalf("after Start: %v", err)
	}
	c.Close(context.Background())
}
