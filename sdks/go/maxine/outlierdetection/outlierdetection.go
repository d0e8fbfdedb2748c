// Package outlierdetection registers grpc-go's outlier_detection
// load-balancing policy (gRFC A50), which the maxine:/// resolver names in
// its service config when built with maxine.WithOutlierDetection. Import it
// for its side effect:
//
//	import _ "github.com/maxine-registry/maxine/sdks/go/maxine/outlierdetection"
//
// grpc-go registers the policy only from its xds package, so importing this
// links grpc-go's xDS client (about 25 MB more in a binary); that is why the
// maxine package does not import it itself (docs/decisions/0009).
package outlierdetection

import (
	_ "google.golang.org/grpc/xds" // registers outlier_detection_experimental
)

// Name is the policy's name in a grpc-go service config.
const Name = "outlier_detection_experimental"
