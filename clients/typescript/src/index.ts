/**
 * A typed, signing client for the customer-onboarding REST API.
 *
 * Types come from the published `openapi.json` (`npm run gen` -> src/schema.d.ts, by
 * openapi-typescript); requests go through openapi-fetch with a middleware that adds the
 * bearer token, a fresh `Idempotency-Key` on modifying calls and the RFC 9421 signature.
 */
import { randomUUID } from "node:crypto";
import createClient, { type Client, type Middleware } from "openapi-fetch";
import type { paths } from "./schema.js";
import { signHeaders, type SigningKey } from "./signing.js";

export * from "./signing.js";
export type { paths, components } from "./schema.js";

const MODIFYING = new Set(["POST", "PUT", "PATCH", "DELETE"]);

export interface Options {
  /** The gateway, e.g. http://localhost:8080 (or .../v1). */
  baseUrl: string;
  /** Bearer token from `POST /auth/token` (`getToken` below). */
  token?: string;
  /** Signs every request when set; leave it out only for the first `PUT /auth/signing`. */
  key?: SigningKey;
}

/**
 * The document lists `Signature`, `Signature-Input`, `Content-Digest` and `Idempotency-Key`
 * as header parameters of each operation; this client writes them itself, so its calls
 * do not take them.
 */
type Signed<Op> = Op extends { parameters: infer P }
  ? Omit<Op, "parameters"> & { parameters: Omit<P, "header"> & { header?: Record<string, string> } }
  : Op;
export type SignedPaths = { [Path in keyof paths]: { [M in keyof paths[Path]]: Signed<paths[Path][M]> } };
export type CustomersClient = Client<SignedPaths>;

/** A client that authenticates and signs every request it sends. */
export function customersClient(options: Options): CustomersClient {
  const client = createClient<SignedPaths>({ baseUrl: options.baseUrl });
  client.use(signing(options));
  return client;
}

/** `POST /auth/token` with the partner's API key and secret. */
export async function getToken(baseUrl: string, apiKey: string, apiSecret: string): Promise<string> {
  const { data, error } = await createClient<paths>({ baseUrl }).POST("/auth/token", {
    body: { apiKey, apiSecret },
  });
  if (error || !data) throw new Error(`POST /auth/token failed: ${JSON.stringify(error)}`);
  return data.token;
}

function signing(options: Options): Middleware {
  return {
    async onRequest({ request }) {
      const headers = new Headers(request.headers);
      if (options.token && !headers.has("authorization")) {
        headers.set("authorization", `Bearer ${options.token}`);
      }
      if (MODIFYING.has(request.method) && !headers.has("idempotency-key")) {
        headers.set("idempotency-key", randomUUID());
      }
      const body = new Uint8Array(await request.clone().arrayBuffer());
      if (options.key) {
        const own: Record<string, string> = {};
        headers.forEach((value, name) => (own[name] = value));
        const added = await signHeaders(options.key, {
          method: request.method,
          url: request.url,
          headers: own,
          body,
        });
        for (const [name, value] of Object.entries(added)) headers.set(name, value);
      }
      return new Request(request.url, {
        method: request.method,
        headers,
        body: body.length > 0 ? body : undefined,
      });
    },
  };
}
