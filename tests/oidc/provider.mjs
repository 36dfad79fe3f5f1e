// Test-only OpenID Provider harness for Gatehouse end-to-end tests.
//
// Wraps the certified `oidc-provider` package. NOT for production use: it
// serves plain HTTP, uses hard-coded client secrets, keeps everything in
// memory, and exposes test-only control endpoints under /__test/ (key
// rotation and private-key export) that no real provider would ever have.
//
// stdout protocol (exactly two lines, nothing else ever goes to stdout):
//   listening oidc http://127.0.0.1:<port>
//   ready
// Everything else (oidc-provider notices/warnings, request logs) goes to stderr.

import * as http from 'node:http';
import * as fs from 'node:fs';
import * as querystring from 'node:querystring';
import { randomUUID } from 'node:crypto';

import * as jose from 'jose';
import Provider, { errors } from 'oidc-provider';

// oidc-provider prints NOTICEs with console.info (stdout). Keep stdout clean
// for the readiness protocol by routing all console output to stderr.
for (const m of ['log', 'info', 'debug']) {
  // eslint-disable-next-line no-console
  console[m] = (...args) => console.error(...args);
}
const out = (line) => process.stdout.write(`${line}\n`);

const HOST = '127.0.0.1';
const AUDIENCE = 'gatehouse';
// RFC 8707 (and oidc-provider) require a resource indicator to be an absolute
// URI. The canonical indicator is `urn:gatehouse`; the harness also accepts the
// bare alias `resource=gatehouse` at the token endpoint (rewritten below).
// Either way, or when `resource` is omitted, the access token gets aud="gatehouse".
const RESOURCE = 'urn:gatehouse';
const RESOURCE_ALIASES = new Set([AUDIENCE, RESOURCE]);
const TOKEN_PATH = '/token';
const CLIENT_CREDENTIALS_TTL = 600;
// Device codes of `gatehouse-cli-short` expire after this many seconds, so a
// test can watch a sign-in run out of time.
const SHORT_DEVICE_CODE_TTL = 4;

// People who sign in through the dev interactions (any password is accepted)
// and the groups their access tokens carry. Unknown logins get no groups.
const ACCOUNT_GROUPS = {
  'alice@example.com': ['dev'],
  'root@example.com': ['gatehouse-admins', 'dev'],
};

// Per-client extra claims live in custom client metadata `gatehouse_claims`,
// declared via extraClientMetadata and emitted via extraTokenClaims.
const CLIENTS = [
  {
    client_id: 'agent-dev',
    client_secret: 'agent-dev-secret',
    gatehouse_claims: { groups: ['dev'] },
  },
  {
    client_id: 'agent-ops',
    client_secret: 'agent-ops-secret',
    gatehouse_claims: { groups: ['ops', 'dev'] },
  },
  {
    client_id: 'agent-delegated',
    client_secret: 'agent-delegated-secret',
    gatehouse_claims: {
      groups: ['dev'],
      on_behalf_of: 'alice@example.com',
      act: { sub: 'agent-delegated' },
    },
  },
  {
    client_id: 'groups-string',
    client_secret: 'groups-string-secret',
    gatehouse_claims: { roles: 'dev ops' },
  },
].map((c) => ({
  ...c,
  grant_types: ['client_credentials'],
  response_types: [],
  redirect_uris: [],
  token_endpoint_auth_method: 'client_secret_basic',
}));

// Public clients for `gatehouse login` (no secret): the device flow, the
// authorization code flow with PKCE on a loopback redirect (any port, RFC
// 8252), and refresh tokens when `offline_access` is granted.
for (const client_id of ['gatehouse-cli', 'gatehouse-cli-short']) {
  CLIENTS.push({
    client_id,
    application_type: 'native',
    token_endpoint_auth_method: 'none',
    grant_types: ['urn:ietf:params:oauth:grant-type:device_code', 'authorization_code', 'refresh_token'],
    response_types: ['code'],
    redirect_uris: ['http://127.0.0.1/callback'],
  });
}

// The web console's client: the admin listener runs the authorization code
// flow with PKCE itself and receives the code on /console/callback (any
// loopback port, as a native client).
CLIENTS.push({
  client_id: 'gatehouse-console',
  application_type: 'native',
  token_endpoint_auth_method: 'none',
  grant_types: ['authorization_code'],
  response_types: ['code'],
  redirect_uris: ['http://127.0.0.1/console/callback'],
});

async function newSigningKey() {
  const { privateKey } = await jose.generateKeyPair('RS256', { modulusLength: 2048, extractable: true });
  const jwk = await jose.exportJWK(privateKey);
  return { ...jwk, kid: `test-${randomUUID()}`, alg: 'RS256', use: 'sig' };
}

function buildProvider(issuer, signingJwk) {
  const configuration = {
    clients: CLIENTS.map((c) => structuredClone(c)),
    jwks: { keys: [signingJwk] }, // ONLY the current key is published
    cookies: { keys: ['gatehouse-oidc-test-harness-cookie-key'] },
    extraClientMetadata: {
      properties: ['gatehouse_claims'],
      validator(_ctx, key, value) {
        if (key === 'gatehouse_claims' && value !== undefined
          && (value === null || typeof value !== 'object' || Array.isArray(value))) {
          throw new Error('gatehouse_claims must be an object');
        }
      },
    },
    async extraTokenClaims(ctx, token) {
      // A person's token (device flow, authorization code, refresh).
      if (token.accountId) {
        return { groups: [...(ACCOUNT_GROUPS[token.accountId] ?? [])] };
      }
      const client = ctx?.oidc?.client
        ?? (token.clientId ? await provider.Client.find(token.clientId) : undefined);
      const claims = client?.gatehouse_claims;
      return claims ? structuredClone(claims) : undefined;
    },
    features: {
      // The provider's own login and consent pages; tests drive them over HTTP.
      devInteractions: { enabled: true },
      deviceFlow: { enabled: true },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: async () => RESOURCE,
        useGrantedResource: async () => true,
        getResourceServerInfo: async (_ctx, resourceIndicator) => {
          if (resourceIndicator !== RESOURCE) {
            throw new errors.InvalidTarget(`unknown resource ${resourceIndicator}`);
          }
          return {
            audience: AUDIENCE,
            scope: '',
            accessTokenFormat: 'jwt',
            accessTokenTTL: CLIENT_CREDENTIALS_TTL,
            jwt: { sign: { alg: 'RS256' } },
          };
        },
      },
    },
    ttl: {
      ClientCredentials: CLIENT_CREDENTIALS_TTL,
      DeviceCode: (_ctx, _code, client) => (client?.clientId === 'gatehouse-cli-short' ? SHORT_DEVICE_CODE_TTL : 600),
      AccessToken: CLIENT_CREDENTIALS_TTL,
      Grant: 3600,
      Interaction: 600,
      Session: 3600,
      RefreshToken: 86400,
      IdToken: 600,
      AuthorizationCode: 60,
    },
    renderError(ctx, out, _error) {
      ctx.type = 'json';
      ctx.body = out;
    },
  };
  const provider = new Provider(issuer, configuration);
  provider.on('server_error', (_ctx, err) => console.error('oidc server_error', err));
  provider.on('grant.error', (_ctx, err) => console.error('oidc grant.error', err.message, err.error_description ?? ''));
  provider.on('grant.success', (ctx) => console.error(`oidc grant.success client=${ctx.oidc.client?.clientId}`));
  return provider;
}

// ---------------------------------------------------------------------------

let current = null; // { provider, handler, jwk }
let issuer = null;

async function activate(signingJwk) {
  const provider = buildProvider(issuer, signingJwk);
  current = { provider, handler: provider.callback(), jwk: signingJwk };
  return signingJwk.kid;
}

function sendJson(res, status, body) {
  const data = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(data),
    'cache-control': 'no-store',
  });
  res.end(data);
}

async function readAll(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return Buffer.concat(chunks);
}

const server = http.createServer(async (req, res) => {
  try {
    const url = new URL(req.url, issuer ?? `http://${HOST}`);
    console.error(`${req.method} ${url.pathname}`);

    if (!current) {
      sendJson(res, 503, { error: 'not_ready' });
      return;
    }

    // ---- test-only control endpoints (exist only in this harness) ----
    if (url.pathname === '/__test/rotate') {
      if (req.method !== 'POST') {
        sendJson(res, 405, { error: 'method_not_allowed' });
        return;
      }
      const kid = await activate(await newSigningKey());
      console.error(`rotated signing key, new kid=${kid}`);
      sendJson(res, 200, { kid });
      return;
    }
    if (url.pathname === '/__test/private-jwk') {
      if (req.method !== 'GET') {
        sendJson(res, 405, { error: 'method_not_allowed' });
        return;
      }
      sendJson(res, 200, current.jwk);
      return;
    }

    // ---- token endpoint: accept bare `resource=gatehouse` alias ----
    if (req.method === 'POST' && url.pathname === TOKEN_PATH
      && (req.headers['content-type'] ?? '').toLowerCase().startsWith('application/x-www-form-urlencoded')) {
      const body = querystring.parse((await readAll(req)).toString('utf8'));
      const mapRes = (r) => (RESOURCE_ALIASES.has(r) ? RESOURCE : r);
      if (Array.isArray(body.resource)) body.resource = body.resource.map(mapRes);
      else if (typeof body.resource === 'string') body.resource = mapRes(body.resource);
      // req is now fully consumed (not readable); oidc-provider then uses req.body.
      req.body = body;
    }

    current.handler(req, res);
  } catch (err) {
    console.error('harness error', err);
    if (!res.headersSent) sendJson(res, 500, { error: 'harness_error', message: String(err?.message ?? err) });
    else res.destroy();
  }
});

let shuttingDown = false;
function shutdown(reason) {
  if (shuttingDown) return;
  shuttingDown = true;
  console.error(`shutting down (${reason})`);
  server.close(() => process.exit(0));
  server.closeAllConnections?.();
  setTimeout(() => process.exit(0), 1000).unref();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));

// Exit when the parent's end of a stdin pipe goes away (test harness died).
// Only when stdin is a pipe/socket, so `node provider.mjs </dev/null &` still works.
try {
  const st = fs.fstatSync(0);
  if (st.isFIFO() || st.isSocket()) {
    process.stdin.on('end', () => shutdown('stdin closed'));
    process.stdin.on('close', () => shutdown('stdin closed'));
    process.stdin.on('error', () => shutdown('stdin error'));
    process.stdin.resume();
  }
} catch {
  // no stdin at all
}

server.listen(0, HOST, async () => {
  try {
    const { port } = server.address();
    issuer = `http://${HOST}:${port}`;
    await activate(await newSigningKey());
    out(`listening oidc ${issuer}`);
    out('ready');
  } catch (err) {
    console.error('failed to start', err);
    process.exit(1);
  }
});
