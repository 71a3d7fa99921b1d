/**
 * End-to-end against a live gateway (run by tests/e2e/test_typescript_client.py): the
 * partner quick start of README.md, step by step, failing on the first unexpected answer.
 * Reads CUSTOMERS_URL, CUSTOMERS_API_KEY and CUSTOMERS_API_SECRET.
 */
import assert from "node:assert/strict";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { customersClient, generateKey, getToken, publicKeyB64 } from "../src/index.js";

const baseUrl = process.env.CUSTOMERS_URL ?? "http://localhost:8080";
const apiKey = process.env.CUSTOMERS_API_KEY ?? "";
const apiSecret = process.env.CUSTOMERS_API_SECRET ?? "";

const token = await getToken(baseUrl, apiKey, apiSecret);
const key = generateKey();

// The first key is registered with the token alone; every later call is signed.
const first = await customersClient({ baseUrl, token }).PUT("/auth/signing", {
  body: { publicKey: publicKeyB64(key) },
});
assert.equal(first.response.status, 201, JSON.stringify(first.error));
assert.equal(first.data?.keyId, key.keyId);
const api = customersClient({ baseUrl, token, key });

const wallet = privateKeyToAccount(generatePrivateKey());
const chainId = `eip155:1:${wallet.address}`;
const created = await api.POST("/customers", { body: { chainId, externalId: wallet.address } });
assert.equal(created.response.status, 201, JSON.stringify(created.error));
const customer = created.data!;
assert.equal(customer.status, "initiating");

// The challenge is an EIP-4361 (SIWE) message, base64: sign its text with personal_sign.
const message = Buffer.from(customer.challenge ?? "", "base64").toString("utf8");
const signature = await wallet.signMessage({ message });
const signed = await api.POST("/customers/{customerId}/challenge/sign", {
  params: { path: { customerId: customer.id } },
  body: {
    signature: Buffer.from(signature.slice(2), "hex").toString("base64"),
    signer: chainId,
    challenge: customer.challenge ?? "",
  },
});
assert.equal(signed.response.status, 204, JSON.stringify(signed.error));

const get = () => api.GET("/customers/{customerId}", { params: { path: { customerId: customer.id } } });
let status = (await get()).data?.status;
for (let i = 0; i < 50 && status === "screening"; i++) {
  await new Promise((resolve) => setTimeout(resolve, 100));
  status = (await get()).data?.status;
}
assert.equal(status, "verifying");

// Sandbox: force the KYC verdict.
const verified = await api.PATCH("/simulator/customers/{customerId}/verify", {
  params: { path: { customerId: customer.id } },
});
assert.equal(verified.response.status, 202, JSON.stringify(verified.error));
assert.equal((await get()).data?.status, "active");

const listed = await api.GET("/customers", { params: { query: { pageSize: 10 } } });
assert.equal(listed.response.status, 200);
assert.ok(listed.data?.customers.some((c) => c.id === customer.id));

const path = { params: { path: { customerId: customer.id } } };
const deactivated = await api.PATCH("/customers/{customerId}/deactivate", path);
assert.equal(deactivated.data?.status, "inactive", JSON.stringify(deactivated.error));
const activated = await api.PATCH("/customers/{customerId}/activate", path);
assert.equal(activated.data?.status, "active", JSON.stringify(activated.error));

const events = await api.GET("/events", { params: { query: { types: ["customer.updated"] } } });
assert.equal(events.response.status, 200, JSON.stringify(events.error));
const mine = (events.data?.events ?? []).filter((e) => JSON.stringify(e).includes(customer.id));
assert.ok(mine.length >= 4, `expected the customer's events, got ${mine.length}`);

console.log(JSON.stringify({ customer: customer.id, status: activated.data?.status, events: mine.length }));
