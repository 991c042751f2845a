#!/usr/bin/env bash
# scripts/make-certs.sh DIR [NAME...]: a development certificate authority
# and one certificate per service, with openssl, in DIR:
#   ca.pem, ca.key                  the cluster's CA (keep ca.key private)
#   NAME.pem, NAME.key              per NAME (default: gateway router worker
#                                   admin client), signed by the CA, usable
#                                   as server and as client certificate
# Each certificate names the service (CN=NAME) and is valid for localhost,
# 127.0.0.1 and ::1, plus $MOE_CERT_SANS (e.g. "DNS:moe-router,DNS:*.svc").
# Existing files are kept, so the CA stays the same across runs.
set -euo pipefail
dir=${1:?usage: make-certs.sh DIR [NAME...]}
shift
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(gateway router worker admin client)
mkdir -p "$dir"
cd "$dir"
umask 077
if [ ! -f ca.pem ]; then
  openssl req -x509 -newkey rsa:2048 -nodes -days 365 -sha256 \
    -subj "/CN=moe-serve development CA" -keyout ca.key -out ca.pem 2>/dev/null
fi
sans="DNS:localhost,IP:127.0.0.1,IP:::1${MOE_CERT_SANS:+,$MOE_CERT_SANS}"
for name in "${names[@]}"; do
  [ -f "$name.pem" ] && continue
  openssl req -newkey rsa:2048 -nodes -sha256 -subj "/CN=$name" \
    -keyout "$name.key" -out "$name.csr" 2>/dev/null
  openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca.key -CAcreateserial \
    -days 365 -sha256 -out "$name.pem" -extfile <(printf '%s\n' \
      "subjectAltName=$sans" \
      "extendedKeyUsage=serverAuth,clientAuth" \
      "keyUsage=digitalSignature,keyEncipherment") 2>/dev/null
  rm -f "$name.csr"
done
chmod 644 ./*.pem
echo "$dir: ca.pem and ${names[*]/%/.pem}"
