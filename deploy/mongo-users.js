// Creates MiniTwit's MongoDB users on the droplet; safe to run again.
// The first user is made through MongoDB's localhost exception; the
// passwords come from the server's environment file, never from the repo.
const fs = require('fs');

const env = {};
for (const line of fs.readFileSync('{{ env_file }}', 'utf8').split('\n')) {
  const m = line.match(/^(\w+)="(.*)"$/);
  if (m) env[m[1]] = m[2];
}

const admin = db.getSiblingDB('admin');
let authed = false;
try {
  authed = admin.auth('admin', env.MINITWIT_MONGO_ADMIN_PASSWORD).ok === 1;
} catch (e) {
  authed = false;
}
if (!authed) {
  admin.createUser({user: 'admin', pwd: env.MINITWIT_MONGO_ADMIN_PASSWORD,
                    roles: ['root']});
  admin.auth('admin', env.MINITWIT_MONGO_ADMIN_PASSWORD);
}

const app = {pwd: env.MINITWIT_MONGO_PASSWORD,
             roles: [{role: 'readWrite', db: 'minitwit'}]};
if (admin.getUser('minitwit') === null) {
  admin.createUser(Object.assign({user: 'minitwit'}, app));
} else {
  admin.updateUser('minitwit', app);
}
