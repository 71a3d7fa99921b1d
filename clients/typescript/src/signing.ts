/**
 * RFC 9421 request signing the way the service verifies it (the same rules as the Python
 * SDK's client/signing.py): covered `@method`, `@authority`, `@path`, `@query` (with a query),
 * `authorization` and `idempotency-key` (when sent) and `content-digest` (RFC 9530, with a
 * body); parameters `created`, `keyid`, `alg`, `nonce`; ECDSA P-384 (raw r||s) or Ed25519.
 * The signature itself is made by the `http-message-signatures` package.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, type KeyObject } from "node:crypto";
import { createSigner, httpbis } from "http-message-signatures";

export type Algorithm = "ecdsa-p384-sha384" | "ed25519";

export interface SigningKey {
  privateKey: KeyObject;
  algorithm: Algorithm;
  /** RFC 7638 JWK thumbprint of the public key: the `keyId` that `PUT /auth/signing` answers. */
  keyId: string;
}

/** A fresh key (P-384 by default). Store `privateKeyPem(key)` somewhere safe. */
export function generateKey(algorithm: Algorithm = "ecdsa-p384-sha384"): SigningKey {
  const { privateKey } =
    algorithm === "ed25519"
      ? generateKeyPairSync("ed25519")
      : generateKeyPairSync("ec", { namedCurve: "secp384r1" });
  return describe(privateKey);
}

/** Load a PEM (PKCS#8 or SEC1) private key; only P-384 and Ed25519 are accepted. */
export function loadKey(pem: string): SigningKey {
  return describe(createPrivateKey(pem));
}

export function privateKeyPem(key: SigningKey): string {
  return key.privateKey.export({ type: "pkcs8", format: "pem" }).toString();
}

/** base64 of the PEM SubjectPublicKeyInfo: the `publicKey` of `PUT /auth/signing`. */
export function publicKeyB64(key: SigningKey): string {
  const pem = createPublicKey(key.privateKey).export({ type: "spki", format: "pem" }).toString();
  return Buffer.from(pem).toString("base64");
}

/** RFC 9530 `sha-256=:<base64>:` of the exact body bytes. */
export function contentDigest(body: Uint8Array): string {
  return `sha-256=:${createHash("sha256").update(body).digest("base64")}:`;
}

/**
 * The headers to add to a request: `Content-Digest` (with a non-empty body),
 * `Signature-Input` and `Signature`. `headers` are the request's own (lower-case names);
 * `authorization` and `idempotency-key` are covered when present.
 */
export async function signHeaders(
  key: SigningKey,
  request: { method: string; url: string; headers: Record<string, string>; body?: Uint8Array },
): Promise<Record<string, string>> {
  const url = new URL(request.url);
  const headers: Record<string, string> = {};
  const fields = ["@method", "@authority", "@path"];
  if (url.search) fields.push("@query");
  for (const name of ["authorization", "idempotency-key"]) {
    const value = request.headers[name];
    if (value !== undefined) {
      headers[name] = value;
      fields.push(name);
    }
  }
  const added: Record<string, string> = {};
  if (request.body && request.body.length > 0) {
    added["content-digest"] = contentDigest(request.body);
    headers["content-digest"] = added["content-digest"];
    fields.push("content-digest");
  }
  const signed = await httpbis.signMessage(
    {
      key: createSigner(key.privateKey, key.algorithm, key.keyId),
      name: "sig1",
      fields,
      params: ["created", "keyid", "alg", "nonce"],
      paramValues: { nonce: randomBytes(16).toString("base64url") },
    },
    { method: request.method.toUpperCase(), url: request.url, headers },
  );
  added["signature-input"] = String(signed.headers["Signature-Input"]);
  added["signature"] = String(signed.headers["Signature"]);
  return added;
}

function describe(privateKey: KeyObject): SigningKey {
  const jwk = createPublicKey(privateKey).export({ format: "jwk" });
  let canonical: string;
  let algorithm: Algorithm;
  if (jwk.kty === "OKP" && jwk.crv === "Ed25519") {
    algorithm = "ed25519";
    canonical = JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x });
  } else if (jwk.kty === "EC" && jwk.crv === "P-384") {
    algorithm = "ecdsa-p384-sha384";
    canonical = JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y });
  } else {
    throw new Error("Unsupported signing key: use an ECDSA P-384 or an Ed25519 private key");
  }
  const keyId = createHash("sha256").update(canonical).digest("base64url");
  return { privateKey, algorithm, keyId };
}
