/// The console's Mustache templates (compiled into the binary, so the image needs no template
/// files). `{{name}}` HTML-escapes; `{{{name}}}` is used only for HTML the console built itself
/// (the rendered page body, the chart's SVG).
enum ConsoleTemplates {
    static let all: [String: String] = [
        "layout": layout, "login": login, "overview": overview, "dead-letters": deadLetters,
        "dead-letter": deadLetter, "confirm": confirm, "payment": payment, "payments": payments,
        "message": message, "problem": problem, "actions": actions, "webhook-log": webhookLog,
        "stream-confirm": streamConfirm,
    ]

    static let css = """
        *{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;\
        color:#1d2430;background:#f4f6f9}header{display:flex;align-items:center;gap:18px;padding:10px 24px;\
        background:#1d2a3a;color:#fff}header a{color:#dfe8f3;text-decoration:none;margin-right:14px}\
        header .brand{font-weight:700;color:#fff;font-size:16px}header nav{display:flex;align-items:center;\
        gap:10px;flex:1}header form{margin:0}header .who{margin-left:auto;color:#9fb3c8}\
        header input,header select{padding:4px 6px;border:0;border-radius:3px}header input{width:210px}\
        main{padding:18px 24px;max-width:1280px}h1{font-size:20px;margin:4px 0 14px}h2{font-size:15px;\
        margin:20px 0 8px;color:#34475c}table{border-collapse:collapse;background:#fff;width:100%;\
        box-shadow:0 1px 2px #0001}th,td{text-align:left;padding:5px 9px;border-bottom:1px solid #e3e8ee;\
        vertical-align:top}th{background:#eef2f6;font-weight:600;font-size:12px;color:#4a5d72}\
        td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}.cards{display:flex;flex-wrap:wrap;\
        gap:10px}.card{background:#fff;padding:10px 14px;min-width:150px;box-shadow:0 1px 2px #0001}\
        .card b{display:block;font-size:20px}.card span{color:#5b6b7c;font-size:12px}.grid2{display:grid;\
        grid-template-columns:1fr 1fr;gap:18px}pre{background:#fff;padding:10px;overflow:auto;max-height:420px;\
        border:1px solid #e3e8ee;white-space:pre-wrap;word-break:break-all}button,.button{background:#2c6bd6;\
        color:#fff;border:0;padding:5px 12px;border-radius:3px;cursor:pointer;font-size:13px;\
        text-decoration:none}button.danger{background:#c2412d}button.plain{background:#6b7a8c}\
        .filters{display:flex;gap:8px;flex-wrap:wrap;align-items:end;background:#fff;padding:10px;\
        margin-bottom:12px}.filters label{display:flex;flex-direction:column;font-size:12px;color:#4a5d72}\
        .filters input,.filters select{padding:4px 6px;border:1px solid #c8d1db;border-radius:3px}\
        .notice{background:#e5f4e8;border-left:4px solid #2f9e44;padding:8px 12px;margin-bottom:12px}\
        .problem{background:#fdecea;border-left:4px solid #c2412d;padding:8px 12px;margin-bottom:12px}\
        .muted{color:#6b7a8c}.actions{display:flex;gap:8px;margin:10px 0}.pager{margin:10px 0;display:flex;\
        gap:12px}.chart{width:100%;max-width:720px;background:#fff}.chart .plot{fill:#fbfcfd;stroke:#d5dde6}\
        .chart .grid{stroke:#e6ebf0}.chart .axis{font-size:10px;fill:#5b6b7c}.chart .backlog{fill:#f2a65a66;\
        stroke:#e8590c}.chart .rate{fill:none;stroke:#1c7ed6;stroke-width:2}.chart .empty{font-size:12px;\
        fill:#6b7a8c}.login{max-width:360px;margin:60px auto;background:#fff;padding:22px;\
        box-shadow:0 1px 3px #0002}.login label{display:block;margin:10px 0 4px}.login input{width:100%;\
        padding:6px;border:1px solid #c8d1db;border-radius:3px}.login button{margin-top:14px;width:100%}\
        code{background:#eef2f6;padding:1px 4px;border-radius:3px}
        """

    static let layout = """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
        <title>{{title}} · Leasehold console</title><style>{{{css}}}</style></head>
        <body><header><a class="brand" href="/">Leasehold console</a>
        {{#user}}<nav><a href="/">Overview</a><a href="/dead-letters">Dead letters</a>
        <form method="get" action="/lookup"><select name="by" aria-label="look up by">
        <option value="payment">payment id</option><option value="user">user id</option>
        <option value="message">request_id / tg:update_id</option></select>
        <input name="q" aria-label="look up" placeholder="id or key"> <button>Look up</button></form>
        <span class="who">{{user}}{{#readOnly}} · read-only{{/readOnly}}</span>
        <form method="post" action="/logout"><input type="hidden" name="csrf" value="{{csrf}}">
        <button class="plain">Log out</button></form></nav>{{/user}}</header>
        <main>{{{body}}}</main></body></html>
        """

    static let login = """
        <form class="login" method="post" action="/login"><h1>Log in</h1>
        {{#problem}}<div class="problem">{{problem}}</div>{{/problem}}
        <input type="hidden" name="csrf" value="{{loginCSRF}}"><input type="hidden" name="next" value="{{next}}">
        <label for="name">Your name (recorded with every action)</label><input id="name" name="name" required>
        <label for="token">Console token</label><input id="token" name="token" type="password" required>
        <button>Log in</button></form>
        """

    static let overview = """
        <h1>Overview</h1>
        <div class="cards">
        <div class="card"><b>{{processedLastMinute}}</b><span>processed in the last minute</span></div>
        {{#latency}}<div class="card"><b>{{p50}} · {{p99}} · {{p999}}</b><span>accepted to committed, p50 · p99 · p99.9, last minute</span></div>{{/latency}}
        <div class="card"><b>{{retryBacklog}}</b><span>retries scheduled{{#nextRetryDue}}, next due {{nextRetryDue}}{{/nextRetryDue}}</span></div>
        <div class="card"><b><a href="/dead-letters">{{deadLetters}}</a></b><span>dead letters</span></div>
        <div class="card"><b>{{outboxPending}}</b><span>bot replies pending</span></div>
        <div class="card"><b>{{outboxFailed}}</b><span>bot replies failed</span></div>
        <div class="card"><b>{{leader}}</b><span>supervisor leader</span></div>
        </div>
        <h2>Backlog and throughput, last hour</h2>{{{chart}}}
        <h2>Streams</h2>
        <table><tr><th>Stream</th><th class="num">Length</th><th class="num">Pending</th>
        <th class="num">Oldest pending</th><th class="num">Undelivered</th><th>Consumers (idle)</th></tr>
        {{#streams}}<tr><td>{{stream}}</td><td class="num">{{length}}</td><td class="num">{{pending}}</td>
        <td class="num">{{oldestPending}}</td><td class="num">{{undelivered}}</td>
        <td>{{consumerCount}}{{#consumers}}<br><span class="muted">{{name}}: idle {{idle}}, {{pending}} pending</span>{{/consumers}}
        {{#paused}}<br><b>{{paused}}</b>{{/paused}}</td></tr>{{/streams}}
        </table>
        {{#canAct}}<form method="post" action="/streams/pause" class="actions"><input type="hidden" name="csrf" value="{{csrf}}">
        <label>Pause<select name="target">{{#pauseTargets}}<option value="{{.}}">{{.}}</option>{{/pauseTargets}}</select></label>
        <label>Reason<input name="reason" required></label> <button class="danger">Pause…</button></form>
        {{#pausedSources}}<form method="post" action="/streams/resume" class="actions"><input type="hidden" name="csrf" value="{{csrf}}">
        <input type="hidden" name="target" value="{{.}}"><button>Resume {{.}}…</button></form>{{/pausedSources}}{{/canAct}}
        <div class="grid2"><div><h2>Dead letters by kind</h2><table><tr><th>Kind</th><th class="num">Dead</th></tr>
        {{#deadByKind}}<tr><td><a href="{{href}}">{{value}}</a></td><td class="num">{{count}}</td></tr>{{/deadByKind}}
        {{^deadByKind}}<tr><td colspan="2" class="muted">none</td></tr>{{/deadByKind}}</table></div>
        <div><h2>Dead letters by error</h2><table><tr><th>Last error</th><th class="num">Dead</th></tr>
        {{#deadByError}}<tr><td><a href="{{href}}">{{value}}</a></td><td class="num">{{count}}</td></tr>{{/deadByError}}
        {{^deadByError}}<tr><td colspan="2" class="muted">none</td></tr>{{/deadByError}}</table></div></div>
        <h2>Recent actions</h2>{{> actions}}
        """

    static let actions = """
        <table><tr><th>When</th><th>Who</th><th>Action</th><th>Scope</th><th>Dead letters</th></tr>
        {{#actions}}<tr><td>{{at}}</td><td>{{actor}}</td><td>{{action}}</td><td>{{scope}}</td><td>{{ids}}</td></tr>{{/actions}}
        {{^actions}}<tr><td colspan="5" class="muted">no actions recorded</td></tr>{{/actions}}</table>
        """

    static let deadLetters = """
        <h1>Dead letters</h1>
        {{#notice}}<div class="notice">{{notice}}</div>{{/notice}}
        <form class="filters" method="get" action="/dead-letters">
        <label>Kind<input name="kind" value="{{kind}}"></label>
        <label>Stream<input name="stream" value="{{stream}}"></label>
        <label>Since (2h, 7d, ISO 8601)<input name="since" value="{{since}}"></label>
        <label>Error contains<input name="error" value="{{error}}"></label>
        <label>User id<input name="user" value="{{user}}" inputmode="numeric"></label>
        <label>Chat id<input name="chat" value="{{chat}}" inputmode="numeric"></label>
        <label>Status<select name="status">{{#statuses}}<option value="{{value}}"{{#selected}} selected{{/selected}}>{{value}}</option>{{/statuses}}</select></label>
        <button>Filter</button> <a href="/dead-letters">clear</a></form>
        <p class="muted">{{total}} matching{{#pageInfo}}, showing {{pageInfo}}{{/pageInfo}}</p>
        <form method="post" action="/dead-letters/replay" id="selection">
        <input type="hidden" name="csrf" value="{{csrf}}">
        <table><tr>{{#canAct}}<th></th>{{/canAct}}<th>ID</th><th>Dead-lettered</th><th>Kind</th><th>Key</th>
        <th>User</th><th class="num">Attempts</th><th>Status</th><th>Last error</th></tr>
        {{#letters}}<tr>{{#canAct}}<td><input type="checkbox" name="id" value="{{id}}" aria-label="select {{id}}"></td>{{/canAct}}
        <td><a href="/dead-letters/{{id}}">{{id}}</a></td><td>{{deadLetteredAt}}</td><td>{{kind}}</td>
        <td>{{messageKey}}</td><td>{{#userID}}<a href="/dead-letters?user={{userID}}">{{userID}}</a>{{/userID}}</td><td class="num">{{attempts}}</td><td>{{status}}</td><td>{{lastError}}</td></tr>{{/letters}}
        {{^letters}}<tr><td colspan="9" class="muted">no dead letters match</td></tr>{{/letters}}</table>
        {{#canAct}}<div class="actions"><button name="scope" value="selected">Replay selected</button>
        <button class="danger" formaction="/dead-letters/purge" name="scope" value="selected">Purge selected</button></div>{{/canAct}}
        </form>
        {{#canAct}}<form method="post" action="/dead-letters/replay" class="actions">
        <input type="hidden" name="csrf" value="{{csrf}}"><input type="hidden" name="scope" value="all">
        {{#filterFields}}<input type="hidden" name="{{name}}" value="{{value}}">{{/filterFields}}
        <button>Replay all matching…</button>
        <button class="danger" formaction="/dead-letters/purge">Purge all matching…</button></form>{{/canAct}}
        <div class="pager">{{#previous}}<a href="{{previous}}">← newer</a>{{/previous}}{{#next}}<a href="{{next}}">older →</a>{{/next}}</div>
        """

    static let deadLetter = """
        <h1>Dead letter {{id}}</h1>
        <table><tr><th>Key</th><td><a href="/messages/{{messageKeyPath}}">{{messageKey}}</a></td></tr>
        <tr><th>Kind</th><td>{{kind}}</td></tr><tr><th>Stream / entry</th><td>{{stream}} {{entryID}}</td></tr>
        {{#userID}}<tr><th>User</th><td><a href="/dead-letters?user={{userID}}&amp;status=all">{{userID}}</a></td></tr>{{/userID}}
        {{#chatID}}<tr><th>Chat</th><td><a href="/dead-letters?chat={{chatID}}&amp;status=all">{{chatID}}</a></td></tr>{{/chatID}}
        <tr><th>Status</th><td>{{status}}{{#replayEntryID}} (replayed as {{replayEntryID}}){{/replayEntryID}}</td></tr>
        <tr><th>Attempts</th><td>{{attempts}}</td></tr><tr><th>First seen</th><td>{{firstSeenAt}}</td></tr>
        <tr><th>Dead-lettered</th><td>{{deadLetteredAt}}</td></tr><tr><th>Last error</th><td>{{lastError}}</td></tr>
        {{#paymentID}}<tr><th>Payment</th><td><a href="/payments/{{paymentPath}}">{{paymentID}}</a></td></tr>{{/paymentID}}
        </table>
        {{#canReplay}}<form method="post" action="/dead-letters/replay" class="actions">
        <input type="hidden" name="csrf" value="{{csrf}}"><input type="hidden" name="scope" value="selected">
        <input type="hidden" name="id" value="{{id}}"><button>Replay…</button>
        <button class="danger" formaction="/dead-letters/purge">Purge…</button></form>{{/canReplay}}
        <h2>Every attempt's error (oldest first)</h2>
        <table><tr><th class="num">#</th><th>At</th><th>Worker</th><th>Error</th></tr>
        {{#history}}<tr><td class="num">{{attempt}}</td><td>{{at}}</td><td>{{worker}}</td><td><pre>{{error}}</pre></td></tr>{{/history}}
        {{^history}}<tr><td colspan="4" class="muted">none recorded</td></tr>{{/history}}</table>
        {{#revealedBy}}<div class="notice">Shown unredacted to {{revealedBy}}, recorded as action {{revealAction}}: reload the page to hide it again.</div>{{/revealedBy}}
        {{#redacted}}<p class="muted">The values of these fields are redacted: {{redactedFields}}.</p>
        {{#canReveal}}<form method="post" action="/dead-letters/{{id}}/reveal" class="actions">
        <input type="hidden" name="csrf" value="{{csrf}}"><label>Reason<input name="reason"></label>
        <button class="danger">Reveal (recorded)</button></form>{{/canReveal}}{{/redacted}}
        <div class="grid2"><div><h2>Payload</h2><pre>{{pretty}}</pre></div><div><h2>Raw</h2><pre>{{raw}}</pre></div></div>
        {{#hasWebhookLog}}<h2>Notifications about this payment (webhook_log)</h2>{{> webhook-log}}{{/hasWebhookLog}}
        <h2>Actions on this letter</h2>{{> actions}}
        """

    static let webhookLog = """
        <table><tr><th>Received</th><th>Event</th><th>Object</th><th class="num">Attempt</th><th>Status</th><th>Error</th></tr>
        {{#notifications}}<tr><td>{{receivedAt}}</td><td>{{event}}</td><td>{{objectID}}</td><td class="num">{{attempt}}</td>
        <td>{{status}}</td><td>{{error}}</td></tr>{{/notifications}}
        {{^notifications}}<tr><td colspan="6" class="muted">none</td></tr>{{/notifications}}</table>
        """

    static let confirm = """
        <h1>{{verb}} {{count}} dead letter{{^one}}s{{/one}}?</h1>
        <p>{{description}}</p>
        {{#hasAny}}<table><tr><th>ID</th><th>Kind</th><th>Key</th><th>Last error</th></tr>
        {{#letters}}<tr><td><a href="/dead-letters/{{id}}">{{id}}</a></td><td>{{kind}}</td><td>{{messageKey}}</td><td>{{lastError}}</td></tr>{{/letters}}
        </table>{{#more}}<p class="muted">and {{more}} more</p>{{/more}}
        <form method="post" action="{{action}}" class="actions"><input type="hidden" name="csrf" value="{{csrf}}">
        <input type="hidden" name="confirm" value="yes">
        {{#fields}}<input type="hidden" name="{{name}}" value="{{value}}">{{/fields}}
        <button class="{{buttonClass}}">{{verb}} {{count}}</button> <a href="/dead-letters">cancel</a></form>{{/hasAny}}
        {{^hasAny}}<p><a href="/dead-letters">back to the list</a></p>{{/hasAny}}
        """

    static let streamConfirm = """
        <h1>{{verb}} {{sources}}?</h1>
        <p>{{description}}</p>
        <form method="post" action="{{action}}" class="actions"><input type="hidden" name="csrf" value="{{csrf}}">
        <input type="hidden" name="confirm" value="yes"><input type="hidden" name="target" value="{{target}}">
        {{#reason}}<input type="hidden" name="reason" value="{{reason}}">{{/reason}}
        <button class="{{buttonClass}}">{{verb}} {{sources}}</button> <a href="/">cancel</a></form>
        """

    static let payment = """
        <h1>Payment {{providerPaymentID}}</h1>
        <table><tr><th>Status</th><td>{{status}}{{#cancellationReason}} (canceled: {{cancellationReason}}){{/cancellationReason}}</td></tr>
        <tr><th>Amount</th><td>{{amount}} {{currency}} (refunded {{refundedAmount}})</td></tr>
        <tr><th>User</th><td><a href="/payments?user={{userID}}">{{userID}}</a></td></tr><tr><th>Plan</th><td>{{plan}}</td></tr>
        <tr><th>Subscription</th><td>{{#subscription}}{{id}}: {{status}}, plan {{plan}}, until {{until}}{{/subscription}}{{^subscription}}none{{/subscription}}</td></tr></table>
        <h2>Notifications (webhook_log)</h2>{{> webhook-log}}
        """

    static let payments = """
        <h1>Payments of user {{userID}}</h1>
        <table><tr><th>Payment</th></tr>{{#ids}}<tr><td><a href="/payments/{{path}}">{{id}}</a></td></tr>{{/ids}}
        {{^ids}}<tr><td class="muted">no payments</td></tr>{{/ids}}</table>
        """

    static let message = """
        <h1>Message {{key}}</h1>
        <h2>Inbox</h2>{{#inbox}}<table><tr><th>Processed</th><td>{{processedAt}}</td></tr><tr><th>Kind</th><td>{{kind}}</td></tr>
        <tr><th>Outcome</th><td><b>{{outcome}}</b></td></tr><tr><th>Stream / entry</th><td>{{stream}} {{entryID}}</td></tr>
        <tr><th>Interview</th><td>{{interviewID}}</td></tr></table>{{/inbox}}
        {{^inbox}}<p class="muted">Not processed: no inbox row (still queued, retrying, dead-lettered, or pruned after the retention).</p>{{/inbox}}
        <h2>Bot replies (outbox)</h2><table><tr><th>ID</th><th>Chat</th><th>Status</th><th class="num">Attempts</th>
        <th>Sent</th><th>Telegram message</th><th>Last error</th><th>Text</th></tr>
        {{#outbox}}<tr><td>{{id}}</td><td>{{chatID}}</td><td>{{status}}</td><td class="num">{{attempts}}</td><td>{{sentAt}}</td>
        <td>{{telegramMessageID}}</td><td>{{lastError}}</td><td>{{text}}</td></tr>{{/outbox}}
        {{^outbox}}<tr><td colspan="8" class="muted">none</td></tr>{{/outbox}}</table>
        <h2>Dead letters under this key</h2><p>{{#deadLetters}}<a href="/dead-letters/{{.}}">{{.}}</a> {{/deadLetters}}{{^deadLetters}}<span class="muted">none</span>{{/deadLetters}}</p>
        """

    static let problem = """
        <h1>{{heading}}</h1><div class="problem">{{message}}</div><p><a href="/">Overview</a></p>
        """
}
