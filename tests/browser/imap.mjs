// A real IMAP server of the browser tests' own, as tests/hub/dovecot.rs runs one for the hub
// tests: Debian's Dovecot as a private process with its own config, passwd-file user and
// maildir in a temp directory, on a loopback port. Mails go in with IMAP APPEND, as a mail
// server would deliver them. Missing Dovecot fails the test loudly (`make test` installs
// `dovecot-imapd` through scripts/ensure-test-deps.sh).
//
// Run as root, Dovecot's login and mail processes are the package's `dovenull` and `dovecot`
// users (the mail directory is theirs); anyone else runs every part as themselves.

import { spawn, execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort } from './helpers.mjs';

export const IMAP_USER = 'desk';
export const IMAP_PASSWORD = 'desk-imap-password';

/** Who runs which part: login user, internal user and group, mail uid and gid. */
function users() {
  const { uid, gid, username } = os.userInfo();
  if (uid === 0) return { login: 'dovenull', internal: 'dovecot', group: 'dovecot', mailUid: 'dovecot', mailGid: 'dovecot' };
  const group = execFileSync('id', ['-gn'], { encoding: 'utf8' }).trim();
  return { login: username, internal: username, group, mailUid: String(uid), mailGid: String(gid) };
}

function config(dir, port, u) {
  return `base_dir = ${dir}/run
state_dir = ${dir}/state
log_path = ${dir}/dovecot.log
listen = 127.0.0.1
protocols = imap
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_login_user = ${u.login}
default_internal_user = ${u.internal}
default_internal_group = ${u.group}
first_valid_uid = 1
first_valid_gid = 1
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u ${dir}/passwd
}
userdb {
  driver = static
  args = uid=${u.mailUid} gid=${u.mailGid} home=${dir}/home/%u
}
mail_location = maildir:~/Maildir
service imap-login {
  chroot =
  inet_listener imap {
    address = 127.0.0.1
    port = ${port}
  }
  inet_listener imaps {
    port = 0
  }
}
service anvil {
  chroot =
}
service auth-worker {
  user = $default_internal_user
}
`;
}

/** Starts Dovecot on a free port with an empty mailbox: `{ port, append(raw), stop() }`. */
export async function startDovecot() {
  const binary = ['/usr/sbin/dovecot'].find(existsSync) ?? 'dovecot';
  const dir = mkdtempSync(path.join(os.tmpdir(), 'switchboard-imap-'));
  // Dovecot's own users read the config and passwd file here (mkdtemp makes it 0700).
  chmodSync(dir, 0o755);
  const home = path.join(dir, 'home');
  mkdirSync(home, { recursive: true });
  const u = users();
  if (u.mailUid === 'dovecot') execFileSync('chown', ['dovecot:dovecot', home]);
  writeFileSync(path.join(dir, 'passwd'), `${IMAP_USER}:{PLAIN}${IMAP_PASSWORD}\n`);
  let last = '';
  for (let attempt = 0; attempt < 10; attempt += 1) {
    const port = await freePort();
    const conf = path.join(dir, 'dovecot.conf');
    writeFileSync(conf, config(dir, port, u));
    const log = path.join(dir, 'dovecot.log');
    rmSync(log, { force: true });
    const child = spawn(binary, ['-F', '-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
    let exited = null;
    child.on('error', (e) => { exited = `dovecot could not run (${e.message}): scripts/ensure-test-deps.sh installs dovecot-imapd`; });
    child.on('exit', (code) => { exited ??= `dovecot exited (${code})`; });
    for (let i = 0; i < 1500 && !exited; i += 1) {
      // Dovecot logs "starting up" only once its listeners are bound.
      if (existsSync(log) && readFileSync(log, 'utf8').includes('starting up')) {
        return {
          port,
          append: (raw) => append(port, raw),
          stop() { child.kill('SIGTERM'); rmSync(dir, { recursive: true, force: true }); },
        };
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    child.kill('SIGKILL');
    last = `${exited ?? 'dovecot did not start within 30 s'}: ${existsSync(log) ? readFileSync(log, 'utf8') : ''}`;
    if (last.includes('could not run')) break;
  }
  rmSync(dir, { recursive: true, force: true });
  throw new Error(last);
}

/** Puts `raw` into the INBOX of the server on `port` with LOGIN, APPEND and LOGOUT. */
function append(port, raw) {
  const mail = Buffer.from(raw.replace(/\r?\n/g, '\r\n'));
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let buffer = '';
    let step = 0;
    socket.on('error', reject);
    socket.on('data', (chunk) => {
      buffer += chunk.toString('utf8');
      if (step === 0 && buffer.includes('* OK')) {
        step = 1; buffer = '';
        socket.write(`a1 LOGIN ${IMAP_USER} ${IMAP_PASSWORD}\r\n`);
      } else if (step === 1 && /^a1 (OK|NO|BAD)/m.test(buffer)) {
        if (!/^a1 OK/m.test(buffer)) return reject(new Error(`IMAP LOGIN: ${buffer}`));
        step = 2; buffer = '';
        socket.write(`a2 APPEND INBOX {${mail.length}}\r\n`);
      } else if (step === 2 && buffer.startsWith('+')) {
        step = 3; buffer = '';
        socket.write(Buffer.concat([mail, Buffer.from('\r\n')]));
      } else if (step === 3 && /^a2 (OK|NO|BAD)/m.test(buffer)) {
        if (!/^a2 OK/m.test(buffer)) return reject(new Error(`IMAP APPEND: ${buffer}`));
        step = 4;
        socket.end('a3 LOGOUT\r\n');
        resolve();
      }
    });
  });
}
