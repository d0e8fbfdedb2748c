#!/usr/bin/env bash
# make-test-certs.sh DIR [DAYS]: makes a small PKI for Maxine with openssl,
# for tests and for trying TLS and mTLS locally (docs/security.md shows it):
#
#   DIR/ca.pem, ca-key.pem          a CA ("Maxine Test CA")
#   DIR/server.pem, server-key.pem  the server: CN maxine, SAN DNS:localhost, IP:127.0.0.1, IP:::1
#   DIR/server-2.pem, server-2-key.pem  a second server certificate (CN maxine-2), same SANs: a rotation
#   DIR/client.pem, client-key.pem  a client: CN payments, SAN URI:spiffe://maxine.test/ns/prod/sa/payments
#   DIR/client-cn.pem, client-cn-key.pem  a client with no SAN: CN inventory
#   DIR/rogue-ca.pem, rogue-client.pem, rogue-client-key.pem  a client from a CA the server does not trust
#
# Keys are EC P-256 without a passphrase. Certificates last DAYS (default 2):
# these are for tests, not for production.
set -euo pipefail
dir=${1:?usage: make-test-certs.sh DIR [DAYS]}
days=${2:-2}
command -v openssl >/dev/null || {
  echo "make-test-certs: openssl not found: install it (Debian: apt-get install -y openssl)" >&2
  exit 1
}
mkdir -p "$dir"
cd "$dir"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# ca NAME CN: a self-signed CA certificate NAME.pem with key NAME-key.pem
ca() {
  key "$1-key.pem"
  openssl req -x509 -new -key "$1-key.pem" -out "$1.pem" -days "$days" -subj "/CN=$2" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
}

# leaf NAME CA CN USAGE [SAN]: a certificate NAME.pem (key NAME-key.pem) signed by CA
leaf() {
  local name=$1 ca=$2 cn=$3 usage=$4 san=${5:-}
  key "$name-key.pem"
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature"
    echo "extendedKeyUsage=$usage"
    [ -n "$san" ] && echo "subjectAltName=$san"
  } >"$tmp/$name.ext"
  openssl req -new -key "$name-key.pem" -subj "/CN=$cn" -out "$tmp/$name.csr" 2>/dev/null
  openssl x509 -req -in "$tmp/$name.csr" -CA "$ca.pem" -CAkey "$ca-key.pem" -CAcreateserial -CAserial "$tmp/$ca.srl" \
    -out "$name.pem" -days "$days" -extfile "$tmp/$name.ext" 2>/dev/null
}

ca ca "Maxine Test CA"
leaf server ca maxine serverAuth "DNS:localhost,IP:127.0.0.1,IP:::1"
leaf server-2 ca maxine-2 serverAuth "DNS:localhost,IP:127.0.0.1,IP:::1"
leaf client ca payments clientAuth "URI:spiffe://maxine.test/ns/prod/sa/payments"
leaf client-cn ca inventory clientAuth
ca rogue-ca "Rogue CA"
leaf rogue-client rogue-ca payments clientAuth "URI:spiffe://maxine.test/ns/prod/sa/payments"
echo "make-test-certs: wrote CA, server, server-2, client, client-cn and rogue-client certificates to $(pwd)"
