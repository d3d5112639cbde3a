// Budgets of the demo stack (examples/demo), used by `make demo` and tests/e2e.
//
// Windows are seconds, not minutes, so an injected fault pages within ~10-30 s and a
// scenario takes well under a minute; the thresholds sit far from the healthy values
// of the demo under its load generator and far below the injected faults.
//
//   watchkeeper generate examples/demo/spec.jsonnet --out DIR --ext-str webhook=http://127.0.0.1:9095
local webhook = std.extVar('webhook');  // base URL of the webhook receiver (page + ticket)
// SLOs at time_scale 60 (docs/slo.md): the 30-day burn-rate table at a minute per hour, so
// the fast page (1m and 5s windows at 14.4x) fires ~10 s into a bad fault. The slower tiers
// need minutes to reset, longer than an e2e scenario, so only page-1h alerts here.
local fastSlo(name, objective, indicator) = {
  name: name, objective: objective, indicator: indicator, window: '12h', time_scale: 60,
  alerting: { tiers: { 'page-6h': false, 'ticket-1d': false, 'ticket-3d': false } },
};

{
  version: 1,
  defaults: {
    labels: { team: 'demo' },
    runbook_url: 'https://runbooks.example.com/{service}/{alert}',
    rate_window: '15s',
    'for': '5s',
    keep_firing_for: '0s',
    min_events: 5,
    prometheus: { evaluation_interval: '1s' },  // the demo's Prometheus and vmalert
    // Generated alerts/alertmanager.yml: critical -> /page, warning -> /ticket of the local
    // receiver. group_wait is long enough that a warning crossing its threshold a few seconds
    // before its critical (a sliding ratio) is still inhibited at the group's first flush;
    // group_interval is longer than the two HA replicas can disagree about a recovery (1-3 s),
    // else Alertmanager sends the resolve of one and re-pages on the other's last "firing".
    alertmanager: {
      receivers: {
        page: { webhook_url: webhook + '/page' },
        ticket: { webhook_url: webhook + '/ticket' },
      },
      group_wait: '8s',
      group_interval: '5s',
      repeat_interval: '1h',
    },
  },
  services: [
    {
      name: 'demo-api',
      selector: { job: 'demo-api' },
      language: 'python',
      http: {
        latency: { p99: { warning: '250ms', critical: '500ms' } },
        error_ratio: { warning: '2%', critical: '5%' },
        // ~21 requests/s healthy (20 of load, 1 of scrapes), ~8 with latency +800 ms (the load
        // generator waits for each answer); traffic_drop 1.0 leaves the scrapes' 1/s.
        throughput: { warning: '4/s', critical: '2/s' },
      },
      slos: [
        fastSlo('availability', '99.5%', 'availability'),  // pages above 7.2% errors
        fastSlo('latency', '99.5%', { latency: '500ms' }),  // above 7.2% slower than 500ms
      ],
      database: {
        // p95, not p99: the demo runs ~60 queries per 15 s window, where p99 is simply the
        // slowest query and one scheduling hiccup on a busy 2-core machine would page.
        latency: { p95: { warning: '50ms', critical: '150ms' } },
        pool: { utilization: { warning: '70%', critical: '90%' } },
      },
      caches: [
        { name: 'items_l1', hit_ratio: { warning: '40%', critical: '20%' } },
        { name: 'items_l2', hit_ratio: { warning: '50%', critical: '25%' } },
      ],
      runtime: {
        memory: { warning: '1GiB', critical: '2GiB' },
        threads: { warning: 200, critical: 1000, leak: { window: '1m', horizon: '30m' } },
        tasks: { warning: 5000, critical: 20000, leak: { window: '1m', horizon: '30m' } },
        gc_pause: { warning: '100ms', critical: '500ms' },
      },
      // The app's background worker: 10 jobs/s of ~5 ms, none failing, none queued when
      // healthy; the job_* faults fail half, add 2 s each, or pause the workers.
      jobs: [
        {
          name: 'emails',
          failure_ratio: { warning: '5%', critical: '20%' },
          duration: { p99: { warning: '1s', critical: '3s' } },
          backlog: { warning: 50, critical: 100 },
        },
      ],
    },
    {
      // Redis as seen by the sidecar: `redis_up` is its availability signal, so Redis
      // down pages as this service's `absent` instead of as cache-ratio noise on demo-api.
      name: 'demo-redis',
      selector: { job: 'demo-sidecar' },
      language: 'go',
      metrics: { up: 'redis_up' },
    },
  ],
}
