package maxine_test

import (
	"context"
	"fmt"
	"os"
	"time"

	registryv1 "github.com/maxine-registry/maxine/sdks/go/gen/maxine/registry/v1"
	"github.com/maxine-registry/maxine/sdks/go/maxine"
)

// helperSession registers MAXINE_TEST_IDS instances of MAXINE_TEST_SERVICE
// in MAXINE_TEST_NS, prints "registered" and waits to be killed.
func helperSession() int {
	s, ok := helperNewSession()
	if !ok {
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, id := range []string{"k-1", "k-2"} {
		_, err := s.Register(ctx, &registryv1.Instance{Namespace: os.Getenv("MAXINE_TEST_NS"), Service: "killed", InstanceId: id, Host: "127.0.0.1", Port: 9200}, maxine.WithTTL(30*time.Second))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	fmt.Println("registered")
	time.Sleep(time.Minute) // the test kills this process; a minute bounds it if not
	return 3
}

// helperNewSession is a helper child's Session of the server at MAXINE_URL
// (false, with the error on stderr, when it cannot be made).
func helperNewSession() (*maxine.Session, bool) {
	c, err := maxine.NewClient(os.Getenv("MAXINE_URL"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return nil, false
	}
	s, err := maxine.NewSession(c)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return nil, false
	}
	return s, true
}
