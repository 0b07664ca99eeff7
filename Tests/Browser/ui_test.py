#!/usr/bin/env python3
"""Browser test of `dcgka ui` (the local web client), end to end.

    python3 Tests/Browser/ui_test.py --dcgka PATH [--screenshots DIR] [--keep]

Starts a relay and two `dcgka ui` processes (Alice and Bob, each with a home of their own in a
temporary folder), drives two headless Chromium windows through the whole flow of issue 12
(first start, relays, contact codes, a group, an invitation from a stranger, chat both ways,
markup sent as text, a removal and what the removed member no longer reads), and checks the
server's local guards (Host, token, Origin, CSP) with raw HTTP. Prints one line per step; exits 0
only when every step passed.
"""

import argparse
import base64
import http.client
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DEFAULT_SITE = os.path.join(REPO, 'Sources', 'WebUI', 'Resources', 'site')

FIRST_LINE_TIMEOUT = 60      # seconds for a process to print its address
WAIT = 60                    # seconds for anything the page should show
SYNC_WAIT = 120              # seconds for something to travel through the relay

XSS_IMG = '<img src=x onerror="window.__pwned=1">'
XSS_SCRIPT = '<b>bold</b><script>window.__pwned=2</script>'
SECRET = 'after-removal-secret'


class Failure(Exception):
    pass


class Alarm(Exception):
    pass


def ok(message):
    print('ok: ' + message, flush=True)


# Processes ------------------------------------------------------------------------------------

class Process:
    """A child process whose first stdout line is read with a timeout; stderr goes to a file."""

    def __init__(self, name, args, workdir, env):
        self.name = name
        self.args = args
        self.stderr_path = os.path.join(workdir, name + '.stderr')
        self.stdout_path = os.path.join(workdir, name + '.stdout')
        self.stderr_file = open(self.stderr_path, 'wb')
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.stderr_file,
                                     stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        self.lines = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        with open(self.stdout_path, 'wb') as copy:
            for line in self.proc.stdout:
                copy.write(line)
                copy.flush()
                self.lines.put(line.decode('utf-8', 'replace').rstrip('\n'))
        self.lines.put(None)

    def first_line(self, timeout=FIRST_LINE_TIMEOUT):
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise Failure('%s printed nothing in %d s' % (self.name, timeout))
        if line is None:
            raise Failure('%s exited (status %s) before printing its address'
                          % (self.name, self.proc.poll()))
        return line.strip()

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=10)
        self.stderr_file.close()

    def stderr_tail(self, lines=60):
        try:
            with open(self.stderr_path, 'rb') as f:
                text = f.read().decode('utf-8', 'replace')
        except OSError:
            return ''
        return '\n'.join(text.splitlines()[-lines:])


# Raw HTTP checks -------------------------------------------------------------------------------

def http_request(port, method, path, headers, body=None):
    connection = http.client.HTTPConnection('127.0.0.1', port, timeout=30)
    try:
        connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for name, value in headers.items():
            connection.putheader(name, value)
        if body is not None:
            connection.putheader('Content-Length', str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        status = response.status
        response_headers = {k.lower(): v for k, v in response.getheaders()}
        if status != 101:
            response.read()
        return status, response_headers
    finally:
        connection.close()


def upgrade_headers(port, protocols, origin=None):
    headers = {
        'Host': '127.0.0.1:%d' % port,
        'Connection': 'Upgrade',
        'Upgrade': 'websocket',
        'Sec-WebSocket-Version': '13',
        'Sec-WebSocket-Key': base64.b64encode(os.urandom(16)).decode(),
    }
    if protocols is not None:
        headers['Sec-WebSocket-Protocol'] = protocols
    if origin is not None:
        headers['Origin'] = origin
    return headers


def security_checks(port, token):
    """The server's local guards, with raw HTTP. Returns the list of what failed (the browser flow
    runs on either way; the run fails at the end if anything here did)."""
    host = '127.0.0.1:%d' % port
    origin = 'http://' + host
    responses = []
    problems = []

    def check(what, method, path, headers, wanted, body=None):
        try:
            status, response_headers = http_request(port, method, path, headers, body)
        except OSError as error:
            problems.append('%s: %s' % (what, error))
            print('NOT ok: %s: %s' % (what, error), flush=True)
            return None
        responses.append((what, response_headers))
        if status != wanted:
            problems.append('%s: expected HTTP %d, got %d' % (what, wanted, status))
            print('NOT ok: %s: expected HTTP %d, got %d' % (what, wanted, status), flush=True)
        else:
            ok('%s -> %d' % (what, wanted))
        return response_headers

    headers = check('GET / with the right Host', 'GET', '/', {'Host': host}, 200)
    check('GET / with Host evil.example (DNS rebinding)', 'GET', '/',
          {'Host': 'evil.example:%d' % port}, 421)
    headers = check('GET /app.js', 'GET', '/app.js', {'Host': host}, 200)
    if headers is not None and 'javascript' not in headers.get('content-type', ''):
        problems.append('app.js is served as %r, not JavaScript' % headers.get('content-type'))
    # A refused upgrade gets Hummingbird's fixed answer to a declined upgrade (400, no body,
    # closed: no WebSocket); the same request without the upgrade headers says why (UI-API.md).
    def refused_upgrade(what, protocols, request_origin):
        try:
            status, _ = http_request(port, 'GET', '/api/socket',
                                     upgrade_headers(port, protocols, origin=request_origin))
        except OSError as error:
            problems.append('%s: %s' % (what, error))
            print('NOT ok: %s: %s' % (what, error), flush=True)
            return
        if status == 101 or status < 400:
            problems.append('%s: the upgrade was not refused (HTTP %d)' % (what, status))
            print('NOT ok: %s: the upgrade was not refused (HTTP %d)' % (what, status), flush=True)
        else:
            ok('%s -> refused (%d, no WebSocket)' % (what, status))

    def plain_socket(protocols, request_origin, request_host=host):
        headers = {'Host': request_host}
        if protocols is not None:
            headers['Sec-WebSocket-Protocol'] = protocols
        if request_origin is not None:
            headers['Origin'] = request_origin
        return headers

    good = 'dcgka-ui.v1, token.' + token
    refused_upgrade('WebSocket upgrade without a token', 'dcgka-ui.v1', origin)
    refused_upgrade('WebSocket upgrade with a wrong token', 'dcgka-ui.v1, token.' + '00' * 32, origin)
    refused_upgrade('WebSocket upgrade with the token but Origin evil.example', good,
                    'http://evil.example')
    refused_upgrade('WebSocket upgrade with the token but no Origin', good, None)
    check('GET /api/socket (no upgrade) without a token', 'GET', '/api/socket',
          plain_socket('dcgka-ui.v1', origin), 401)
    check('GET /api/socket (no upgrade) with a wrong token', 'GET', '/api/socket',
          plain_socket('dcgka-ui.v1, token.' + '00' * 32, origin), 401)
    check('GET /api/socket (no upgrade) with the token but Origin evil.example', 'GET',
          '/api/socket', plain_socket(good, 'http://evil.example'), 403)
    check('GET /api/socket (no upgrade) with Host evil.example', 'GET', '/api/socket',
          plain_socket(good, origin, 'evil.example:%d' % port), 421)
    headers = check('WebSocket upgrade with the token and the right Origin', 'GET', '/api/socket',
                    upgrade_headers(port, good, origin=origin), 101)
    if headers is not None and headers.get('sec-websocket-protocol') != 'dcgka-ui.v1':
        problems.append('the upgrade answered the subprotocol %r, not dcgka-ui.v1'
                        % headers.get('sec-websocket-protocol'))
    check('GET /api/export without Authorization', 'GET', '/api/export', {'Host': host}, 401)
    check('GET /api/export with a wrong token', 'GET', '/api/export',
          {'Host': host, 'Authorization': 'Bearer ' + '11' * 32}, 401)
    check('POST /api/import with the token but Origin evil.example', 'POST', '/api/import',
          {'Host': host, 'Authorization': 'Bearer ' + token, 'Origin': 'http://evil.example'},
          403, body=b'x')
    missing = [what for what, headers in responses
               if "script-src 'self'" not in headers.get('content-security-policy', '')]
    if missing:
        problems.append('no Content-Security-Policy with script-src \'self\' on: ' + '; '.join(missing))
        print('NOT ok: no Content-Security-Policy on: ' + '; '.join(missing), flush=True)
    else:
        ok('every response carries a Content-Security-Policy with script-src \'self\'')
    return problems


# Browsers -------------------------------------------------------------------------------------

def make_driver(downloads):
    options = webdriver.ChromeOptions()
    options.binary_location = '/usr/bin/chromium'
    for argument in ('--headless=new', '--no-sandbox', '--disable-dev-shm-usage',
                     '--window-size=1280,900', '--disable-gpu', '--no-first-run',
                     '--disable-extensions', '--lang=en-GB', '--force-prefers-reduced-motion'):
        options.add_argument(argument)
    options.set_capability('goog:loggingPrefs', {'browser': 'ALL'})
    driver = webdriver.Chrome(service=Service('/usr/bin/chromedriver'), options=options)
    driver.set_window_size(1280, 900)
    # The page itself 1280x900 (the window's outer size leaves less to the page).
    driver.execute_cdp_cmd('Emulation.setDeviceMetricsOverride',
                           {'width': 1280, 'height': 900, 'deviceScaleFactor': 1, 'mobile': False})
    os.makedirs(downloads, exist_ok=True)
    driver.execute_cdp_cmd('Browser.setDownloadBehavior',
                           {'behavior': 'allow', 'downloadPath': downloads})
    driver.set_page_load_timeout(WAIT)
    driver.set_script_timeout(WAIT)
    return driver


class Page:
    """One person's browser window."""

    def __init__(self, name, driver, url):
        self.name = name
        self.driver = driver
        self.url = url
        self.log = []

    def wait(self, condition, what, timeout=WAIT):
        def safe(driver):
            try:
                return condition(driver)
            except StaleElementReferenceException:
                return False
        try:
            return WebDriverWait(self.driver, timeout, poll_frequency=0.25).until(safe)
        except TimeoutException:
            raise Failure('%s: timed out after %d s waiting until %s' % (self.name, timeout, what))

    def find(self, css):
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def finds(self, css):
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def visible(self, css, timeout=WAIT):
        def check(driver):
            elements = driver.find_elements(By.CSS_SELECTOR, css)
            return elements[0] if elements and elements[0].is_displayed() else False
        return self.wait(check, css + ' is visible', timeout)

    def click(self, css, timeout=WAIT):
        def check(driver):
            elements = driver.find_elements(By.CSS_SELECTOR, css)
            if elements and elements[0].is_displayed() and elements[0].is_enabled():
                return elements[0]
            return False
        deadline = time.time() + timeout
        while True:
            element = self.wait(check, css + ' can be clicked', max(1, deadline - time.time()))
            try:
                self.driver.execute_script('arguments[0].scrollIntoView({block: "nearest"});', element)
                element.click()
                return element
            except StaleElementReferenceException:
                # The list was rebuilt between finding and clicking: find it again.
                if time.time() > deadline:
                    raise Failure('%s: %s kept being replaced' % (self.name, css))

    def type(self, css, text, clear=True):
        element = self.visible(css)
        if clear:
            element.clear()
        element.send_keys(text)
        return element

    def panel(self, name):
        """Opens a side panel (contacts, transports, members, new-group) unless it is open."""
        section = self.find('#%s-panel' % name)
        if not section.is_displayed():
            opener = {'contacts': '#nav-contacts', 'transports': '#nav-transports',
                      'members': '#members-button', 'new-group': '#new-group-button'}[name]
            self.click(opener)
        self.visible('#%s-panel' % name)

    def close_panel(self):
        for button in self.finds('#side [data-close-panel]'):
            if button.is_displayed():
                button.click()
        self.wait(lambda d: not self.find('#side').is_displayed(), 'the side panel is closed')

    def text_of(self, css):
        return self.driver.execute_script(
            'const e = document.querySelector(arguments[0]); return e ? e.textContent : null;', css)

    def entries(self):
        """The chat's entries as dicts (kind, mine, sender, text, event, problem)."""
        return self.driver.execute_script('''
            return Array.from(document.querySelectorAll('#messages [data-entry-kind]'), (e) => {
              const sender = e.querySelector('.entry-sender');
              const text = e.querySelector('.entry-text');
              return {id: Number(e.dataset.entryId), kind: e.dataset.entryKind,
                      mine: e.dataset.mine === 'true', problem: e.dataset.problem === 'true',
                      event: e.dataset.event || null,
                      sender: sender ? sender.textContent : null,
                      text: text ? text.textContent : null};
            });''')

    def wait_entry(self, text, mine=None, timeout=SYNC_WAIT):
        def check(driver):
            for entry in self.entries():
                if entry['kind'] == 'message' and entry['text'] == text and \
                        (mine is None or entry['mine'] == mine):
                    return entry
            return False
        return self.wait(check, 'the message %r is shown' % text, timeout)

    def send(self, text):
        composer = self.click('#composer')
        lines = text.split('\n')
        for index, line in enumerate(lines):
            if index > 0:
                ActionChains(self.driver).key_down(Keys.SHIFT).send_keys(Keys.ENTER) \
                    .key_up(Keys.SHIFT).perform()
            composer.send_keys(line)
        composer.send_keys(Keys.ENTER)
        self.wait_entry(text, mine=True, timeout=WAIT)

    def pwned(self):
        return self.driver.execute_script('return typeof window.__pwned === "undefined" ? null : window.__pwned;')

    def shot(self, directory, name):
        if not directory:
            return
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, name)
        self.driver.execute_script('document.activeElement && document.activeElement.blur();')
        # No hover look on whatever the pointer last clicked.
        ActionChains(self.driver).move_to_element(self.find('.brand-name')).perform()
        if not self.driver.save_screenshot(path):
            raise Failure('could not save ' + path)
        ok('%s: screenshot %s' % (self.name, path))

    def collect_log(self):
        try:
            self.log.extend(self.driver.get_log('browser'))
        except Exception:  # noqa: BLE001 - logs are a diagnostic only
            pass
        return self.log


def csp_violations(page):
    # "Refused to load / execute / apply / connect ...": something the page did was blocked;
    # any other word of the browser's about the policy (an invalid source) counts too.
    return [entry['message'] for entry in page.collect_log()
            if 'Refused to' in entry.get('message', '')
            or 'Content Security Policy' in entry.get('message', '')]


# The flow -------------------------------------------------------------------------------------

def first_start(page, name, screenshots=None):
    page.driver.get(page.url)
    page.visible('#name-input')
    page.wait(lambda d: d.execute_script('return location.hash === ""'),
              'the token is gone from the address bar')
    if not page.driver.execute_script('return /^[0-9a-f]{64}$/.test(sessionStorage.getItem("dcgka-ui-token") || "")'):
        raise Failure('%s: the token is not kept in sessionStorage' % page.name)
    if screenshots:
        page.shot(screenshots, 'first-start.png')
    page.type('#name-input', name)
    page.find('#name-input').send_keys(Keys.ENTER)
    page.wait(lambda d: page.text_of('#me-name') == name, 'the header shows the name ' + name)
    code = page.wait(lambda d: d.find_element(By.ID, 'my-code').get_attribute('value'),
                     'the contact code is shown')
    ok('%s chose the name %s (contact code %s…)' % (page.name, name, code[:16]))


def add_relay(page, address):
    page.panel('transports')
    page.type('#relay-address-input', address)
    page.click('#add-relay-button')
    css = '#relay-list li[data-relay-address="%s"] .link-state[data-connected="true"]' % address
    page.visible(css, timeout=SYNC_WAIT)
    ok('%s added the relay and is connected to it' % page.name)


def run(args, workdir, pages, processes):
    env = dict(os.environ)
    if args.site:
        env['DCGKA_UI_SITE'] = args.site
    relay = Process('relay', [args.dcgka, 'relay', 'serve', '--listen', '127.0.0.1:0',
                              '--data', os.path.join(workdir, 'relay')], workdir, env)
    processes.append(relay)
    alice_ui = Process('alice-ui', [args.dcgka, 'ui', '--home', os.path.join(workdir, 'alice'),
                                    '--listen', '127.0.0.1:0'], workdir, env)
    processes.append(alice_ui)
    bob_ui = Process('bob-ui', [args.dcgka, 'ui', '--home', os.path.join(workdir, 'bob'),
                                '--listen', '127.0.0.1:0'], workdir, env)
    processes.append(bob_ui)
    relay_address = relay.first_line()
    if not relay_address.startswith('dcgka-relay://'):
        raise Failure('the relay printed %r, not its address' % relay_address)
    ok('relay at ' + relay_address)
    alice_url = alice_ui.first_line()
    bob_url = bob_ui.first_line()
    for who, url in (('alice', alice_url), ('bob', bob_url)):
        if not url.startswith('http://127.0.0.1:') or '#token=' not in url:
            raise Failure('dcgka ui (%s) printed %r, not its URL' % (who, url))
    ok('dcgka ui for alice and bob started')

    parsed = urllib.parse.urlparse(alice_url)
    security_problems = security_checks(parsed.port, parsed.fragment.split('token=', 1)[1])

    alice_downloads = os.path.join(workdir, 'alice-downloads')
    alice = Page('alice', make_driver(alice_downloads), alice_url)
    pages.append(alice)
    bob = Page('bob', make_driver(os.path.join(workdir, 'bob-downloads')), bob_url)
    pages.append(bob)
    ok('two browsers started')

    first_start(alice, 'Alice', args.screenshots)
    first_start(bob, 'Bob')
    add_relay(alice, relay_address)
    add_relay(bob, relay_address)

    # Bob's contact code, from his page (the copy button, then the read-only field).
    bob.panel('contacts')
    bob.click('#copy-code')
    bob.wait(lambda d: (page_text := bob.text_of('#copy-status')) and page_text.strip(),
             'the copy button says what it did')
    bob_code = bob.find('#my-code').get_attribute('value').strip()
    if not bob_code:
        raise Failure('bob: no contact code in #my-code')
    ok('bob copied his contact code (%s)' % bob.text_of('#copy-status').strip())

    # A code with one character changed: the checksum catches it, and the page says so.
    alice.panel('contacts')
    middle = len(bob_code) // 2
    replacement = next(c for c in 'qpzry9x8gf2tvdw0s3jn54khce6mua7l' if c != bob_code[middle])
    broken = bob_code[:middle] + replacement + bob_code[middle + 1:]
    alice.type('#contact-code-input', broken)
    alice.type('#contact-name-input', 'Bob')
    alice.click('#add-contact-button')
    error = alice.wait(lambda d: (alice.find('#contact-error').is_displayed()
                                  and alice.find('#contact-error').text.strip()),
                       'the contact code error is shown')
    if 'checksum' not in error.lower():
        raise Failure('alice: the error for a changed character does not speak of the checksum: %r' % error)
    live = alice.find('#contact-error').get_attribute('aria-live')
    if live not in ('assertive', 'polite'):
        raise Failure('alice: #contact-error is not a live region')
    ok('a changed character in a contact code is refused in words: "%s"' % error)

    alice.type('#contact-code-input', bob_code)
    alice.type('#contact-name-input', 'Bob')
    alice.click('#add-contact-button')
    bob_id = alice.wait(lambda d: d.execute_script('''
        for (const li of document.querySelectorAll('#contact-list li[data-contact-id]')) {
          if (li.querySelector('.contact-name').textContent === 'Bob') return li.dataset.contactId;
        }
        return null;'''), 'Bob is in the contact list')
    if alice.find('#contact-error').is_displayed():
        raise Failure('alice: the contact error is still shown after a good code')
    ok('alice added Bob as a contact from his code')

    # A group with Bob.
    alice.panel('new-group')
    alice.type('#group-title-input', 'Newsroom')
    alice.click('#new-group-contacts input[data-contact-id="%s"]' % bob_id)
    alice.click('#create-group-button')
    alice.wait(lambda d: alice.text_of('#chat-title') == 'Newsroom' and
               alice.find('#chat-open').is_displayed(), 'the new group is open')
    ok('alice created the group "Newsroom" with Bob')

    # Bob has not added Alice: an invitation waits for him.
    item = bob.visible('#group-list button[data-pending="true"]', timeout=SYNC_WAIT)
    label = item.text
    if 'Invitation' not in label:
        raise Failure('bob: the pending invitation is not marked in the group list: %r' % label)
    ok('bob sees a pending invitation in his group list (%s)' % ' / '.join(label.split('\n')))
    item.click()
    bob.visible('#invitation-card')
    invitation = bob.text_of('#invitation-text')
    if 'Alice' not in invitation and 'not in your contacts' not in invitation:
        raise Failure('bob: the invitation does not say who invited him: %r' % invitation)
    ok('bob sees who invited him: "%s"' % invitation)
    bob.click('#accept-invitation')
    bob.wait(lambda d: bob.find('#composer').is_displayed() and bob.find('#composer').is_enabled()
             and not bob.find('#invitation-card').is_displayed(), 'bob is in the group',
             timeout=SYNC_WAIT)
    ok('bob accepted the invitation')

    # Bob sees Alice as "not a contact" in the members panel, then adds her from her code: the
    # names a device shows are the ones it gave its contacts.
    bob.panel('members')
    alice_id = bob.wait(lambda d: d.execute_script('''
        const others = Array.from(document.querySelectorAll('#member-list li[data-me="false"]'));
        if (others.length !== 1) return null;
        return others[0].textContent.includes('not a contact') ? others[0].dataset.memberId : null;'''),
        'bob\'s members panel lists Alice as not a contact', timeout=SYNC_WAIT)
    ok('bob\'s members panel shows the inviter %s… as "not a contact"' % alice_id[:12])
    alice.panel('contacts')
    alice_code = alice.find('#my-code').get_attribute('value').strip()
    bob.panel('contacts')
    bob.type('#contact-code-input', alice_code)
    bob.type('#contact-name-input', 'Alice')
    bob.click('#add-contact-button')
    bob.visible('#contact-list li[data-contact-id="%s"]' % alice_id)
    ok('bob added Alice as a contact from her code')

    # Chat both ways.
    alice.send('Hello Bob, the draft is in the shared folder.')
    entry = bob.wait_entry('Hello Bob, the draft is in the shared folder.', mine=False)
    if entry['sender'] != 'Alice':
        raise Failure('bob: Alice\'s message shows the sender %r, not Alice' % entry['sender'])
    ok('bob reads Alice\'s message, from "Alice"')
    bob.send('Thanks, reading it now.')
    entry = alice.wait_entry('Thanks, reading it now.', mine=False)
    if entry['sender'] != 'Bob':
        raise Failure('alice: Bob\'s message shows the sender %r, not Bob' % entry['sender'])
    ok('alice reads Bob\'s reply, from "Bob"')
    two_lines = 'Two notes:\nthe second paragraph needs a source.'
    bob.send(two_lines)
    alice.wait_entry(two_lines, mine=False)
    ok('Shift+Enter makes a new line, Enter sends: alice reads a two-line message')
    alice.send('Good catch, I will call them this afternoon.')
    bob.wait_entry('Good catch, I will call them this afternoon.', mine=False)
    ok('both read every message')

    # Read marks: the open group has no unread badge at Alice.
    alice.wait(lambda d: not alice.finds('#group-list button[aria-current="true"] .badge-unread'),
               'the open group shows no unread count')
    separators = alice.finds('#messages .day-separator')
    if not separators or not separators[0].text.strip():
        raise Failure('alice: no day separator above the first message')
    times = [t.text for t in alice.finds('#messages .entry-message time')]
    if not times or not all(len(t) == 5 and t[2] == ':' for t in times):
        raise Failure('alice: message times are not HH:MM: %r' % times)
    ok('open group marked read; day separator "%s"; times like %s' % (separators[0].text, times[0]))
    alice.close_panel()
    alice.shot(args.screenshots, 'chat.png')

    # A file: Alice exports the group sealed with a passphrase (a download), Bob imports it with
    # the passphrase (all of it is already here).
    alice.panel('transports')
    alice.visible('#relay-list li .link-state[data-connected="true"]')
    alice.shot(args.screenshots, 'transports.png')
    Select(alice.find('#export-protection')).select_by_value('passphrase')
    alice.type('#export-passphrase', 'correct horse battery staple')
    alice.click('#export-button')
    alice.wait(lambda d: (alice.text_of('#export-status') or '').startswith('Saved'),
               'the export says it saved a file')

    def downloaded(driver):
        names = [n for n in os.listdir(alice_downloads) if n.endswith('.dcgka')]
        return os.path.join(alice_downloads, names[0]) if names else False
    exported = alice.wait(downloaded, 'the exported file is in the downloads folder')
    ok('alice exported a file sealed with a passphrase (%s, %d bytes)'
       % (os.path.basename(exported), os.path.getsize(exported)))
    bob.panel('transports')
    bob.type('#import-passphrase', 'wrong horse')
    bob.visible('#import-file')
    bob.find('#import-file').send_keys(exported)
    refusal = bob.wait(lambda d: bob.find('#import-error').is_displayed()
                       and bob.find('#import-error').text.strip(),
                       'a wrong passphrase is refused in words')
    ok('bob\'s import with a wrong passphrase is refused: "%s"' % refusal)
    bob.type('#import-passphrase', 'correct horse battery staple')
    bob.find('#import-file').send_keys(exported)
    report = bob.wait(lambda d: (t := bob.text_of('#import-report') or '').startswith('Imported') and t,
                      'bob\'s import report is shown')
    ok('bob imported it with the passphrase: "%s"' % report)

    # The members panel.
    alice.panel('members')
    alice.wait(lambda d: len(alice.finds('#member-list li[data-member-id]')) == 2,
               'the members panel lists two members')
    if not alice.finds('#member-list li[data-me="true"] .tag-you'):
        raise Failure('alice: the members panel does not mark "you"')
    ok('alice sees both members, herself marked "you"')
    alice.shot(args.screenshots, 'members.png')
    Select(alice.find('#timer-select')).select_by_value('604800')
    alice.wait(lambda d: '7 days' in (alice.text_of('#timer-status') or ''),
               'the members panel confirms the timer')
    timer_said = alice.text_of('#timer-status')
    alice.close_panel()
    alice.panel('members')
    alice.wait(lambda d: alice.find('#timer-select').get_attribute('value') == '604800',
               'the group reports disappearing messages after 7 days')
    ok('alice set disappearing messages to 7 days: "%s"' % timer_said)

    # Markup is text.
    alice.send(XSS_IMG)
    alice.send(XSS_SCRIPT)
    bob.wait_entry(XSS_IMG, mine=False)
    bob.wait_entry(XSS_SCRIPT, mine=False)
    for page in (alice, bob):
        for tag in ('img', 'script', 'b', 'iframe'):
            if page.finds('#messages ' + tag):
                raise Failure('%s: a <%s> element exists inside #messages' % (page.name, tag))
        if page.pwned() is not None:
            raise Failure('%s: window.__pwned is %r' % (page.name, page.pwned()))
    ok('markup in messages is shown as text at both (no element made, window.__pwned undefined)')

    # Alice removes Bob, confirming with the keyboard.
    alice.click('#member-list .remove-member[data-member-id="%s"]' % bob_id)
    alice.wait(lambda d: d.switch_to.active_element.get_attribute('id') == 'cancel-remove',
               'the confirm step has the focus')
    ActionChains(alice.driver).key_down(Keys.SHIFT).send_keys(Keys.TAB).key_up(Keys.SHIFT).perform()
    alice.wait(lambda d: d.switch_to.active_element.get_attribute('id') == 'confirm-remove',
               'Shift+Tab reaches the confirm button')
    ActionChains(alice.driver).send_keys(Keys.ENTER).perform()
    alice.wait(lambda d: len(alice.finds('#member-list li[data-member-id]')) == 1,
               'Bob is no longer listed')
    ok('alice removed Bob (confirmed with the keyboard)')

    bob.wait(lambda d: bob.find('#removed-notice').is_displayed(),
             'bob sees that he was removed', timeout=SYNC_WAIT)
    notice = bob.text_of('#removed-notice')
    if bob.find('#composer').is_enabled() or bob.find('#send-button').is_enabled():
        raise Failure('bob: the composer is still enabled after the removal')
    removal = bob.wait(lambda d: next((e for e in bob.entries()
                                       if e['kind'] == 'event' and 'remov' in (e['text'] or '').lower()),
                                      False), 'bob sees the removal event')
    ok('bob sees "%s", the event "%s", and his composer is disabled' % (notice, removal['text']))

    alice.send(SECRET)
    alice.panel('transports')
    alice.wait(lambda d: alice.finds('#relay-list li .link-state[data-connected="true"]') and
               not any('waiting' in f.text for f in alice.finds('#relay-list .transport-facts')),
               'alice\'s outbox for the relay is empty', timeout=SYNC_WAIT)
    deadline = time.time() + 10
    while time.time() < deadline:
        if SECRET in (bob.text_of('#messages') or ''):
            raise Failure('bob reads "%s" after his removal' % SECRET)
        time.sleep(0.5)
    ok('alice\'s message after the removal reached the relay; bob never shows it (10 s)')

    for page in (alice, bob):
        violations = csp_violations(page)
        if violations:
            raise Failure('%s: Content-Security-Policy violations:\n  %s'
                          % (page.name, '\n  '.join(violations)))
    ok('no Content-Security-Policy violation in either browser')

    # The relay goes away: Alice's page says she is offline.
    relay.stop()
    alice.visible('#offline-banner', timeout=SYNC_WAIT)
    ok('with the relay gone, alice sees: "%s"' % alice.text_of('#offline-banner').strip())
    # Bob's dcgka ui goes away: his page says the connection is lost (not "offline").
    bob_ui.stop()
    bob.wait(lambda d: 'lost' in (bob.text_of('#connection-banner') or '') and
             bob.find('#connection-banner').is_displayed(), 'bob sees the connection lost banner')
    ok('with dcgka ui gone, bob sees: "%s"' % bob.text_of('#connection-banner').strip())

    if security_problems:
        raise Failure('the browser flow passed, but %d security check(s) failed:\n  %s'
                      % (len(security_problems), '\n  '.join(security_problems)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--dcgka', required=True, help='the dcgka binary')
    parser.add_argument('--screenshots', help='a folder for chat.png, members.png, transports.png')
    parser.add_argument('--keep', action='store_true', help='keep the temporary folder')
    parser.add_argument('--site', default=os.environ.get('DCGKA_UI_SITE') or DEFAULT_SITE,
                        help='the page\'s folder, as DCGKA_UI_SITE (default: the repository\'s; '
                             'empty: the binary\'s own)')
    parser.add_argument('--timeout', type=int, default=360, help='seconds for the whole run')
    args = parser.parse_args()
    args.dcgka = os.path.abspath(args.dcgka)
    if args.screenshots:
        args.screenshots = os.path.abspath(args.screenshots)

    def alarm(signum, frame):
        raise Alarm('the whole run took more than %d s' % args.timeout)
    signal.signal(signal.SIGALRM, alarm)
    signal.alarm(args.timeout)

    started = time.time()
    workdir = tempfile.mkdtemp(prefix='dcgka-ui-test-')
    pages = []
    processes = []
    failed = None
    try:
        run(args, workdir, pages, processes)
    except (Failure, Alarm) as error:
        failed = str(error)
    except Exception:  # noqa: BLE001 - any other error fails the run with its traceback
        failed = traceback.format_exc()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        if failed:
            for page in pages:
                try:
                    page.driver.save_screenshot(os.path.join(workdir, page.name + '-failure.png'))
                    for entry in page.collect_log():
                        print('[%s browser] %s' % (page.name, entry.get('message')), file=sys.stderr)
                except Exception:  # noqa: BLE001
                    pass
        for page in pages:
            try:
                page.driver.quit()
            except Exception:  # noqa: BLE001
                pass
        for process in processes:
            try:
                process.stop()
            except Exception:  # noqa: BLE001
                pass
        if failed:
            for process in processes:
                tail = process.stderr_tail()
                if tail:
                    print('--- %s stderr ---\n%s' % (process.name, tail), file=sys.stderr)
        if args.keep or failed and args.keep:
            print('kept ' + workdir, file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    elapsed = time.time() - started
    if failed:
        print('FAILED: ' + failed, flush=True)
        print('(%.0f s)' % elapsed)
        return 1
    print('PASSED: the web client\'s whole flow (%.0f s)' % elapsed, flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
