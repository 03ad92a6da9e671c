package mockcc

// The mock agent desktop: a page that loads its assets, logs in with Basic
// credentials through the REST API, then opens the notification WebSocket
// and shows the event it receives.
const desktopHTML = `<!doctype html>
<html><head><meta charset="utf-8"><title>Agent desktop (mock)</title>
<link rel="stylesheet" href="/desktop/static/desktop.css">
<script src="/desktop/static/desktop.js" defer></script></head>
<body>
<h1>Agent desktop</h1>
<form id="login"><input id="user" value="agent1"><input id="pass" type="password"><button id="signin" type="submit">Sign in</button></form>
<p id="status">signed out</p>
<ul id="events"></ul>
</body></html>
`

const desktopCSS = `body{font-family:sans-serif;margin:2em}#status{font-weight:bold}`

const desktopJS = `document.getElementById('status').dataset.assets = 'loaded';
document.getElementById('login').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const user = document.getElementById('user').value;
  const pass = document.getElementById('pass').value;
  const auth = 'Basic ' + btoa(user + ':' + pass);
  const status = document.getElementById('status');
  const res = await fetch('/finesse/api/User/' + encodeURIComponent(user), {headers: {Authorization: auth, 'X-Requested-With': 'XMLHttpRequest'}});
  if (res.status !== 200) { status.textContent = 'login failed: ' + res.status; return; }
  status.textContent = 'signed in as ' + user;
  const proto = 'base64url.basic.authorization.' + btoa(user + ':' + pass).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  const ws = new WebSocket('wss://' + location.host + '/ws', ['xmpp', proto]);
  ws.onopen = () => ws.send("<auth user='" + user + "'/>");
  ws.onmessage = (m) => {
    const li = document.createElement('li');
    li.className = 'event';
    li.textContent = m.data;
    document.getElementById('events').appendChild(li);
  };
  ws.onerror = () => { status.textContent += ' (notifications failed)'; };
});
`
