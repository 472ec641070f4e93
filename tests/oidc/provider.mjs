// A real OpenID provider for Runway's tests: npm `oidc-provider`, with one client
// and a few test accounts, on a free loopback port.
//
//   node provider.mjs [--clock-skew-seconds N]
//
// prints `OIDC_ISSUER=http://127.0.0.1:PORT` on stdout once it listens, and serves
// until it is killed. Everything is real: discovery, the JWKS, signed ID tokens,
// authorization codes bound to PKCE and redirect URI, single use.
//
// Logging in is a plain form POST, as a browser would send it, to this script's
// own interaction handler (oidc-provider's dev interactions render HTML for
// people; a form of one field is simpler to drive from a test):
//
//   GET  /interaction/:uid          200, a form naming the accounts
//   POST /interaction/:uid/login    `login=<account>`: signs in and grants the
//                                   requested scopes, then 303 back into the flow
//
// `--clock-skew-seconds N` runs the provider's clock N seconds behind, with ID
// tokens valid for 60 s: every ID token it issues has already expired by the real
// clock, yet is signed with its real keys. That is how the tests get an expired
// ID token from a real provider.

import http from 'node:http';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: { 'clock-skew-seconds': { type: 'string', default: '0' } },
});
const skewSeconds = Number(values['clock-skew-seconds']);
if (!Number.isInteger(skewSeconds) || skewSeconds < 0) {
  throw new Error('--clock-skew-seconds must be a whole number');
}
if (skewSeconds > 0) {
  const realNow = Date.now;
  Date.now = () => realNow() - skewSeconds * 1000;
}
// Imported after the clock is set, so the provider only ever sees the skewed one.
const { default: Provider } = await import('oidc-provider');

// The test accounts. `sub` is the account id; Runway must find users by it.
const ACCOUNTS = {
  ada: { email: 'ada@example.com', email_verified: true, name: 'Ada', groups: ['dev'] },
  root: { email: 'root@example.com', email_verified: true, name: 'Root', groups: ['dev', 'ci-admins'] },
  boss: { email: 'boss@example.com', email_verified: true, name: 'Boss', groups: [] },
  una: { email: 'una@example.com', email_verified: false, name: 'Una', groups: [] },
  eve: { email: 'eve@elsewhere.example', email_verified: true, name: 'Eve', groups: [] },
};

// The redirect URIs the tests' Runway servers use.
const REDIRECT_URIS = [
  'http://localhost:8080/api/v1/auth/oidc/callback',
  'https://runway.example.test/api/v1/auth/oidc/callback',
];

const server = http.createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: 'runway',
      client_secret: 'runway-test-client-secret',
      redirect_uris: REDIRECT_URIS,
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  async findAccount(_ctx, id) {
    const account = ACCOUNTS[id];
    if (!account) return undefined;
    return { accountId: id, async claims() { return { sub: id, ...account }; } };
  },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
    groups: ['groups'],
  },
  scopes: ['openid', 'email', 'profile', 'groups'],
  // The claims of the granted scopes go into the ID token itself, where Runway
  // reads them, not only into the userinfo response.
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  features: { devInteractions: { enabled: false } },
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  ttl: skewSeconds > 0 ? { IdToken: 60 } : {},
  cookies: { keys: ['runway-test-cookie-key'] },
});
provider.proxy = false;

function readForm(req) {
  return new Promise((resolve, reject) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => {
      body += chunk;
      if (body.length > 10000) reject(new Error('form too large'));
    });
    req.on('end', () => resolve(new URLSearchParams(body)));
    req.on('error', reject);
  });
}

async function interaction(req, res, uid, action) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) {
    res.writeHead(400, { 'content-type': 'text/plain' }).end('not this interaction\n');
    return;
  }
  if (req.method === 'GET' && !action) {
    const names = Object.keys(ACCOUNTS).join(', ');
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(
      `<form method="post" action="/interaction/${uid}/login">` +
        `<label>account (${names}) <input name="login"></label><button>Sign in</button></form>\n`,
    );
    return;
  }
  if (req.method === 'POST' && action === 'login') {
    const accountId = (await readForm(req)).get('login');
    if (!ACCOUNTS[accountId]) {
      res.writeHead(400, { 'content-type': 'text/plain' }).end('no such account\n');
      return;
    }
    const grant = new provider.Grant({ accountId, clientId: details.params.client_id });
    grant.addOIDCScope(details.params.scope);
    const grantId = await grant.save();
    await provider.interactionFinished(
      req,
      res,
      { login: { accountId }, consent: { grantId } },
      { mergeWithLastSubmission: false },
    );
    return;
  }
  res.writeHead(405, { 'content-type': 'text/plain' }).end('method not allowed\n');
}

const callback = provider.callback();
server.on('request', (req, res) => {
  const match = /^\/interaction\/([^/?]+)(?:\/(login))?(?:\?.*)?$/.exec(req.url);
  if (!match) {
    callback(req, res);
    return;
  }
  interaction(req, res, match[1], match[2]).catch((err) => {
    res.writeHead(400, { 'content-type': 'text/plain' }).end(`${err.name}: ${err.message}\n`);
  });
});

process.stdout.write(`OIDC_ISSUER=${issuer}\n`);
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
