/**
 * Line-based headless client: how a person tries the protocol without the desktop app, and how a bot
 * uses it.  npm run chat -- --relay ws://HOST:8787 --user alice [--state DIR]
 *
 * Commands: /dm USER TEXT, /create G, /join G, /send G TEXT, /leave G, /delete G, /members G, /groups,
 * /safety USER, /help, /quit. Identity and sessions persist in DIR (default ~/.sealed-chat).
 */
import { createInterface } from 'node:readline';
import { homedir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { E2EEClient } from '../core/index.js';
import { SqliteStore } from '../storage/sqlite-store.js';

const HELP = `commands:
  /dm USER TEXT     send a direct message
  /create G         create group G        /join G     join group G
  /send G TEXT      send to group G       /leave G    leave group G
  /delete G         delete group G        /members G  list members
  /groups           list your groups      /safety USER  show the safety number
  /quit`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      relay: { type: 'string', default: 'ws://127.0.0.1:8787' },
      user: { type: 'string' },
      state: { type: 'string', default: path.join(homedir(), '.sealed-chat') },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help || !values.user) {
    console.log('usage: npm run chat -- --relay ws://HOST:8787 --user NAME [--state DIR]\n' + HELP);
    process.exit(values.help ? 0 : 2);
  }
  const host = new URL(values.relay).host.replace(/[^A-Za-z0-9.-]/g, '_');
  const store = new SqliteStore(path.join(values.state, `${values.user}@${host}.db`));
  const client = new E2EEClient({
    url: values.relay,
    userId: values.user,
    keyStore: store.asKeyStore(),
    stateStore: store,
    ack: { rcvDirectMessage: true, rcvGroupMessage: true },
  });
  const print = (line: string): void => console.log(line);
  client.on('connect', () => print(`* connected to ${values.relay} as ${values.user}`));
  client.on('disconnect', ({ code }) => print(`* disconnected (${code}); reconnecting`));
  client.on('error', (e) => print(`! ${e.message}`));
  client.on('e2eeError', (e) =>
    print(`! could not decrypt${e.from ? ` from ${e.from}` : ''}: ${e.message} [${e.code}]`),
  );
  client.on('message', (m) => print(`[${m.from}] ${m.text}`));
  client.on('binaryMessage', (m) => print(`[${m.from}] <${m.data.length} bytes>`));
  client.on('groupMessage', (m) => print(`[${m.group}] ${m.from}: ${m.text}`));
  client.on('groupBinaryMessage', (m) => print(`[${m.group}] ${m.from}: <${m.data.length} bytes>`));
  client.on('ack', (a) => {
    if (a.state === 'delivered') print(`* delivered to ${a.to}${a.group ? ` in ${a.group}` : ''}`);
  });
  client.on('userCreated', (e) => print(`* new user ${e.userId}`));
  client.on('userDeleted', (e) => print(`* user ${e.userId} deleted`));
  client.on('groupCreated', (e) => print(`* created group ${e.group}`));
  client.on('groupDeleted', (e) => print(`* group ${e.group} deleted`));
  client.on('groupJoin', (e) => print(`* joined ${e.group}: ${e.members.join(', ')}`));
  client.on('groupLeave', (e) => print(`* left ${e.group}`));
  client.on('groupMemberJoin', (e) => print(`* ${e.userId} joined ${e.group}`));
  client.on('groupMemberLeave', (e) => print(`* ${e.userId} left ${e.group}`));
  client.on('identityChanged', (e) =>
    print(`! ${e.userId}'s security key changed: compare /safety ${e.userId}`),
  );

  try {
    await client.connect();
  } catch (e) {
    print(`! cannot connect: ${(e as Error).message}`);
    store.close();
    process.exit(1);
  }
  print('type /help for commands');

  const rl = createInterface({ input: process.stdin, terminal: false });
  const quit = async (): Promise<void> => {
    rl.close();
    await client.close();
    store.close();
    process.exit(0);
  };
  for await (const raw of rl) {
    const line = raw.trim();
    if (!line) continue;
    const [cmd, arg = '', ...rest] = line.split(/\s+/);
    const text = line.split(/\s+/).slice(2).join(' ') || rest.join(' ');
    try {
      switch (cmd) {
        case '/dm':
          print(`* sent ${await client.sendDirectMessage(arg, text)}`);
          break;
        case '/send':
          print(`* sent ${await client.sendGroupMessage(arg, text)}`);
          break;
        case '/create':
          await client.createGroup(arg);
          break;
        case '/join':
          await client.joinGroup(arg);
          break;
        case '/leave':
          await client.leaveGroup(arg);
          break;
        case '/delete':
          await client.deleteGroup(arg);
          break;
        case '/members':
          print(`* ${arg}: ${(await client.groupMembers(arg)).join(', ')}`);
          break;
        case '/groups':
          for (const g of client.listGroups()) print(`* ${g.group}: ${g.members.join(', ')}`);
          break;
        case '/safety':
          print(`* safety number with ${arg}: ${client.safetyNumber(arg) ?? 'no session yet'}`);
          break;
        case '/help':
          print(HELP);
          break;
        case '/quit':
          await quit();
          return;
        default:
          print('! unknown command; /help lists them');
      }
    } catch (e) {
      print(`! ${(e as Error).message}`);
    }
  }
  await quit();
}

void main();
