package maxine_test

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	registryv1 "github.com/maxine-registry/maxine/sdks/go/gen/maxine/registry/v1"
)

// TestGeneratedGRPCStubs: the grpc-go stubs (protoc-gen-go-grpc) talk to
// the server as they are, for grpc-go users who skip this package.
func TestGeneratedGRPCStubs(t *testing.T) {
	t.Parallel()
	ns := uniqueNS(t)
	conn, err := grpc.NewClient(strings.TrimPrefix(serverURL(), "http://"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rpc := registryv1.NewRegistryServiceClient(conn)
	ctx := ctxT(t, 10*time.Second)
	reg, err := rpc.Register(ctx, &registryv1.RegisterRequest{Instance: &registryv1.Instance{Namespace: ns, Service: "stubs", Host: "127.0.0.1", Port: 1}})
	if err != nil {
		t.Fatal(err)
	}
	list, err := rpc.ListServices(ctx, &registryv1.ListServicesRequest{Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.GetServices()) != 1 || list.GetServices()[0].GetService() != "stubs" || list.GetRevision() < reg.GetRevision() {
		t.Fatalf("ListServices = %v after Register at revision %d", list, reg.GetRevision())
	}
	if _, err := rpc.Deregister(ctx, &registryv1.DeregisterRequest{Key: &registryv1.InstanceKey{Namespace: ns, Service: "stubs", InstanceId: reg.GetInstance().GetInstanceId()}}); err != nil {
		t.Fatal(err)
	}
}
