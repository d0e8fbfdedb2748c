import type { PeerCertificate } from "node:tls";

/** TlsPeer is what a TLS socket (or an HTTP/2 session's socket proxy) tells of its client's certificate. */
interface TlsPeer {
  readonly authorized?: boolean;
  getPeerCertificate(detailed?: boolean): PeerCertificate | Record<string, never>;
}

/**
 * peerIdentityOf is the identity of a connection's verified client
 * certificate (mTLS): its first URI SAN (a SPIFFE id such as
 * spiffe://example.org/ns/prod/sa/payments), else its first DNS SAN, else
 * its subject CN. It is undefined for a cleartext connection, a connection
 * that sent no certificate, and one whose certificate did not verify
 * against MAXINE_TLS_CA (MAXINE_TLS_CLIENT_AUTH=request lets those in).
 * Works on a TLSSocket and on an HTTP/2 session's socket proxy alike.
 */
export function peerIdentityOf(socket: object | null | undefined): string | undefined {
  // typeof, not "in": an HTTP/2 session's socket proxy forwards reads (get) but not "in" (has)
  if (socket === null || socket === undefined || typeof (socket as Partial<TlsPeer>).getPeerCertificate !== "function") return undefined;
  const peer = socket as TlsPeer;
  if (peer.authorized !== true) return undefined;
  const cert = peer.getPeerCertificate(false);
  if (cert === null || Object.keys(cert).length === 0) return undefined;
  return identityOfCertificate(cert as PeerCertificate);
}

/** identityOfCertificate picks a certificate's identity: URI SAN, else DNS SAN, else CN (see peerIdentityOf). */
export function identityOfCertificate(cert: Pick<PeerCertificate, "subject" | "subjectaltname">): string | undefined {
  const sans = parseSubjectAltName(cert.subjectaltname ?? "");
  const uri = sans.find((s) => s.type === "URI");
  if (uri !== undefined) return uri.value;
  const dns = sans.find((s) => s.type === "DNS");
  if (dns !== undefined) return dns.value;
  const cn = cert.subject?.CN as string | string[] | undefined;
  const first = Array.isArray(cn) ? cn[0] : cn;
  return first === undefined || first === "" ? undefined : first;
}

/**
 * parseSubjectAltName reads Node's subjectaltname text ("DNS:a, URI:b,
 * IP Address:127.0.0.1"). Node quotes a value holding a comma, quote or
 * other special character as a JSON string ("URI:\"a,b\""), so a comma
 * inside a value never splits it.
 */
export function parseSubjectAltName(text: string): Array<{ type: string; value: string }> {
  const out: Array<{ type: string; value: string }> = [];
  const re = /\s*([^:,]+):("(?:[^"\\]|\\.)*"|[^,]*)\s*(?:,|$)/gy;
  let m: RegExpExecArray | null;
  while (re.lastIndex < text.length && (m = re.exec(text)) !== null) {
    let value = m[2]!;
    if (value.startsWith('"')) {
      try {
        value = JSON.parse(value) as string;
      } catch {
        value = value.slice(1, -1);
      }
    }
    out.push({ type: m[1]!.trim(), value: value.trim() });
    if (m[0] === "") break;
  }
  return out;
}
