"""Settings shared by every environment. Environment-specific modules override a few names."""

from kombu import Exchange, Queue

from .env import (
    BASE_DIR,
    VAR_DIR,
    caches_from_env,
    env_address,
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
    env_site_url,
    env_str,
)

SECRET_KEY = env_str("DJANGO_SECRET_KEY", "dev-insecure-key-do-not-use-in-production")
DEBUG = False
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.sitemaps",
    "django_celery_beat",
    "publisher",
    "publisher.webhooks",
    "scheduling",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "publisher.middleware.EditorTimezoneMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "settings.urls"
WSGI_APPLICATION = "settings.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "publisher.site.context.site",
            ],
        },
    },
]

# DATABASES is set per environment (dev/test: SQLite default; prod: DATABASE_URL required).
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
MEDIA_URL = "media/"
MEDIA_ROOT = env_str("MEDIA_ROOT", str(VAR_DIR / "media"))

EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.filebased.EmailBackend")
EMAIL_FILE_PATH = env_str("EMAIL_FILE_PATH", str(VAR_DIR / "mail"))
# The SMTP server, used when EMAIL_BACKEND is the SMTP backend (production's default).
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)  # STARTTLS, usually port 587
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)  # implicit TLS, usually port 465
if EMAIL_USE_TLS and EMAIL_USE_SSL:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("EMAIL_USE_TLS and EMAIL_USE_SSL are both on: choose one (STARTTLS, usually on "
                               "port 587, is EMAIL_USE_TLS=1; implicit TLS, usually on port 465, is EMAIL_USE_SSL=1).")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 465 if EMAIL_USE_SSL else 587 if EMAIL_USE_TLS else 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
# Seconds a connect or a command may block (Django's default: forever, holding a worker).
EMAIL_TIMEOUT = env_float("EMAIL_TIMEOUT", 10.0, minimum=0.1)
DEFAULT_FROM_EMAIL = env_address("DEFAULT_FROM_EMAIL", "publisher@localhost")
SERVER_EMAIL = env_address("SERVER_EMAIL", DEFAULT_FROM_EMAIL)
# Where subscribers' replies go (Reply-To); unset: to DEFAULT_FROM_EMAIL.
PUBLISHER_EMAIL_REPLY_TO = env_address("PUBLISHER_EMAIL_REPLY_TO", "")
# What a subscriber's mail holds: the article's excerpt or its whole body.
PUBLISHER_EMAIL_CONTENT = env_choice("PUBLISHER_EMAIL_CONTENT", "excerpt", ("excerpt", "full"))
# `check --deploy` refuses a file, console, locmem or dummy backend (mail that never leaves) unless
# this is on.
PUBLISHER_EMAIL_ALLOW_LOCAL_BACKEND = env_bool("PUBLISHER_EMAIL_ALLOW_LOCAL_BACKEND", False)

# LOG_FORMAT=json: one JSON object per line (for log shippers). Either way, lines logged while a
# pipeline task runs carry its task id, claim token and article ids (publisher/log.py).
LOG_FORMAT = env_str("LOG_FORMAT", "plain")
if LOG_FORMAT not in ("plain", "json"):
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(f"LOG_FORMAT must be plain or json, got {LOG_FORMAT!r}.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"pipeline_context": {"()": "publisher.log.ContextFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s%(context)s"},
        "json": {"()": "publisher.log.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT,
                             "filters": ["pipeline_context"]}},
    "loggers": {
        "publisher": {"handlers": ["console"], "level": env_str("PUBLISHER_LOG_LEVEL", "INFO"), "propagate": False},
        "scheduling": {"handlers": ["console"], "level": env_str("PUBLISHER_LOG_LEVEL", "INFO"), "propagate": False},
    },
}

# --- Publishing pipeline -------------------------------------------------------------------
# How often beat runs the scan (seconds). Written to the database by `manage.py sync_schedules`.
PUBLISHER_SCAN_INTERVAL = env_float("PUBLISHER_SCAN_INTERVAL", 10.0, minimum=0.1)
# Look-ahead: the scan also claims articles due within this many seconds and hands them to the
# broker with an ETA of their publish time, so they go live on the second rather than up to one
# scan interval late. Keep it above the scan interval and far below the visibility timeout.
PUBLISHER_LOOKAHEAD = env_float("PUBLISHER_LOOKAHEAD", max(2 * PUBLISHER_SCAN_INTERVAL, 5.0), minimum=0.0)
# Releases (docs/releases.md) are claimed this many seconds ahead, so that all their members are
# prepared (rendered, thumbnailed) before the release time; the flip itself waits for that time.
PUBLISHER_RELEASE_LOOKAHEAD = env_float("PUBLISHER_RELEASE_LOOKAHEAD", max(PUBLISHER_LOOKAHEAD, 60.0), minimum=0.0)
# Articles due within this many seconds of each other may share one chain (and one ETA).
PUBLISHER_CHUNK_WINDOW = env_float("PUBLISHER_CHUNK_WINDOW", 0.02, minimum=0.0)
# Most articles one scan claims; a scan that hits the cap re-enqueues itself.
PUBLISHER_SCAN_BATCH = env_int("PUBLISHER_SCAN_BATCH", 1000, minimum=1)
# Articles carried by one publishing chain.
PUBLISHER_CHUNK_SIZE = env_int("PUBLISHER_CHUNK_SIZE", 50, minimum=1)
# A claim older than this is presumed lost (worker killed, message lost) and re-dispatched.
PUBLISHER_LEASE_SECONDS = env_int("PUBLISHER_LEASE_SECONDS", 300, minimum=1)
# Claims per article before it is marked failed instead of dispatched again.
PUBLISHER_MAX_ATTEMPTS = env_int("PUBLISHER_MAX_ATTEMPTS", 3, minimum=1)
# Lateness policy: an article found more than this many seconds past publish_at is marked
# `missed` instead of published. Unset (the default) publishes however late.
PUBLISHER_MAX_LATENESS = env_int("PUBLISHER_MAX_LATENESS", 0, minimum=0) or None
# The longest article body accepted (characters); longer ones are refused where they enter.
PUBLISHER_MAX_BODY_CHARS = env_int("PUBLISHER_MAX_BODY_CHARS", 200_000, minimum=1)
# Subscribers handled by one fan-out task, and notifications by one send task.
PUBLISHER_FANOUT_BATCH = env_int("PUBLISHER_FANOUT_BATCH", 5000, minimum=1)
PUBLISHER_SEND_BATCH = env_int("PUBLISHER_SEND_BATCH", 500, minimum=1)
# Notifications a sender claims (`pending` -> `sending`) at a time inside its task's range: a
# worker process killed mid-send leaves at most this many `sending` (then `interrupted`).
PUBLISHER_SEND_CLAIM = env_int("PUBLISHER_SEND_CLAIM", 20, minimum=1)
# Messages per second one worker process sends at most; 0 (the default) sends unthrottled.
PUBLISHER_SEND_RATE = env_float("PUBLISHER_SEND_RATE", 0.0, minimum=0.0)
# Seconds after an article went live by which its fan-out must have finished; the scan's
# sweeper re-dispatches one that has not (a lost notify or fan-out message), at most this often.
PUBLISHER_FANOUT_DEADLINE = env_int("PUBLISHER_FANOUT_DEADLINE", 600, minimum=1)
# How long a notification stays worth sending.
PUBLISHER_NOTIFICATION_TTL = env_int("PUBLISHER_NOTIFICATION_TTL", 24 * 3600, minimum=1)
PUBLISHER_THUMBNAIL_SIZE = (400, 400)
# Wall-clock seconds one article's rendering, and its thumbnail, may take inside a chunk; past
# it that article fails alone and its chunk mates go on (publisher/budgets.py). Keep it well
# under CELERY_TASK_SOFT_TIME_LIMIT. 0 disables it.
PUBLISHER_ARTICLE_TIME_BUDGET = env_float("PUBLISHER_ARTICLE_TIME_BUDGET", 10.0, minimum=0.0)
# Images with more pixels are refused at upload and fail their article in the pipeline; Pillow's
# own Image.MAX_IMAGE_PIXELS is set to match (publisher/apps.py).
PUBLISHER_MAX_IMAGE_PIXELS = env_int("PUBLISHER_MAX_IMAGE_PIXELS", 40_000_000, minimum=1)
# Pre-flight (docs/preflight.md): this many minutes before an article (or a release) is due, the scan prepares
# it without making it live (render, thumbnail, e-mail, slug, required fields, alt text) and
# marks what would fail *at risk*, e-mailing whoever scheduled it. 0 disables it.
PUBLISHER_PREFLIGHT_MINUTES = env_float("PUBLISHER_PREFLIGHT_MINUTES", 30.0, minimum=0.0)
# Task retries: bounded, exponential with jitter, capped well below the visibility timeout.
PUBLISHER_TASK_MAX_RETRIES = env_int("PUBLISHER_TASK_MAX_RETRIES", 5, minimum=0)
PUBLISHER_RETRY_BACKOFF_MAX = env_int("PUBLISHER_RETRY_BACKOFF_MAX", 60, minimum=1)

# --- Public site (publisher/site/) ---------------------------------------------------------
# Absolute base of every public link (pages' canonical URLs, feeds, sitemap, e-mails), e.g.
# https://news.example.com. Unset: the request's own host (production: `check --deploy` error).
PUBLISHER_SITE_URL = env_site_url("PUBLISHER_SITE_URL")
PUBLISHER_SITE_NAME = env_str("PUBLISHER_SITE_NAME", "Publisher")
# Longest Cache-Control max-age of a public page (seconds); it is shorter whenever the next
# scheduled publish or unpublish time affecting the page comes sooner.
PUBLISHER_PUBLIC_MAX_AGE = env_int("PUBLISHER_PUBLIC_MAX_AGE", 60, minimum=0)
# Subscribing on the site (publisher/subscriptions.py, docs/subscribers.md). Days a
# confirmation link stays valid.
PUBLISHER_CONFIRM_DAYS = env_int("PUBLISHER_CONFIRM_DAYS", 7, minimum=1)
# Subscribe requests one client (IP address) may make per hour; past it: 429.
PUBLISHER_SUBSCRIBE_PER_IP = env_int("PUBLISHER_SUBSCRIBE_PER_IP", 10, minimum=1)
# Confirmation mails one address may receive per hour, whoever asks for them.
PUBLISHER_SUBSCRIBE_PER_ADDRESS = env_int("PUBLISHER_SUBSCRIBE_PER_ADDRESS", 3, minimum=1)
# Reverse proxies in front of the web processes that append the client's address to
# X-Forwarded-For: the client is the address that many hops from the right. 0: REMOTE_ADDR.
PUBLISHER_PROXY_COUNT = env_int("PUBLISHER_PROXY_COUNT", 0, minimum=0)
# Days a shareable preview link (publisher/site/preview.py) keeps working after it was made.
PUBLISHER_PREVIEW_DAYS = env_int("PUBLISHER_PREVIEW_DAYS", 7, minimum=1)
# Server-side cache of public pages: CACHE_URL (redis://, rediss://, unix://, locmem://);
# unset, local memory per process (production: the broker's Redis when the broker is Redis).
CACHES = caches_from_env(None)

# --- Celery ---------------------------------------------------------------------------------
# CELERY_BROKER_URL / CELERY_RESULT_BACKEND are set per environment.
CELERY_TIMEZONE = TIME_ZONE
CELERY_ENABLE_UTC = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_RESULT_EXTENDED = False
CELERY_RESULT_EXPIRES = env_int("CELERY_RESULT_EXPIRES", 7200, minimum=60)
CELERY_TASK_IGNORE_RESULT = True
# At-least-once delivery: ack after the task body ran, give the message back when the worker
# process dies, and take one message at a time so a dying worker holds as little as possible.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Celery's consumer, plus: claims whose ETA messages a broken connection dropped are handed to
# the next scan's sweeper at once instead of after their lease (publisher/worker.py).
CELERY_WORKER_CONSUMER = "publisher.worker:Consumer"
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 120, minimum=1)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 150, minimum=2)
CELERY_TASK_TRACK_STARTED = False
# Task events (what Flower reads) cost the worker's main process ~0.6 ms of CPU per task: off
# unless CELERY_TASK_EVENTS=1 (docs/operations.md), on every process that sends or runs tasks.
CELERY_WORKER_SEND_TASK_EVENTS = env_bool("CELERY_TASK_EVENTS", False)
CELERY_TASK_SEND_SENT_EVENT = CELERY_WORKER_SEND_TASK_EVENTS
# Celery's Django fixup closes every database connection before and after each task (a new
# PostgreSQL connection costs ~1 ms in the worker and ~4 ms in the server); with a reuse max it
# closes them only every that many tasks, here never. The worker instead treats each task as
# Django treats a request (publisher/apps.py): a connection past DATABASE_CONN_MAX_AGE, or
# broken by an error, is closed, and a kept one is health-checked before its first use.
CELERY_DB_REUSE_MAX = 2**62
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Redis re-delivers an unacked message after the visibility timeout; every retry countdown and
# every ETA the pipeline uses stays well below it.
CELERY_VISIBILITY_TIMEOUT = env_int("CELERY_VISIBILITY_TIMEOUT", 3600, minimum=10)
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_VISIBILITY_TIMEOUT}
# RabbitMQ instead re-delivers only when the worker's channel closes, and closes a channel that
# holds a message unacknowledged longer than its consumer_timeout (30 min by default): ETA and
# countdown messages are held by the worker, so they stay below it (check publisher.E004).
PUBLISHER_RABBITMQ_CONSUMER_TIMEOUT = env_int("PUBLISHER_RABBITMQ_CONSUMER_TIMEOUT", 1800, minimum=1)
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_VISIBILITY_TIMEOUT}

CELERY_TASK_QUEUES = [
    Queue("scan", Exchange("scan"), routing_key="scan"),
    Queue("publish", Exchange("publish"), routing_key="publish"),
    Queue("media", Exchange("media"), routing_key="media"),
    Queue("notify", Exchange("notify"), routing_key="notify"),
    Queue("webhooks", Exchange("webhooks"), routing_key="webhooks"),
]
CELERY_TASK_DEFAULT_QUEUE = "publish"
CELERY_TASK_ROUTES = {
    "scheduling.*": {"queue": "scan"},
    "publisher.tasks.generate_thumbnails": {"queue": "media"},
    "publisher.tasks.fan_out_notifications": {"queue": "notify"},
    "publisher.tasks.send_notifications": {"queue": "notify"},
    "publisher.tasks.send_confirmation": {"queue": "notify"},
    "publisher.tasks.*": {"queue": "publish"},
    "publisher.webhooks.tasks.sweep": {"queue": "scan"},  # a periodic job, like the others
    "publisher.webhooks.tasks.*": {"queue": "webhooks"},
}

CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Beat wakes at least this often to notice schedule edits made in the admin.
CELERY_BEAT_MAX_LOOP_INTERVAL = env_int("CELERY_BEAT_MAX_LOOP_INTERVAL", 5, minimum=1)

# --- Webhooks ------------------------------------------------------------------------------
# Webhooks (docs/webhooks.md). Loopback, private, link-local and reserved addresses are refused
# unless this is set (tests, a receiver on the same host).
PUBLISHER_WEBHOOKS_ALLOW_PRIVATE = env_bool("PUBLISHER_WEBHOOKS_ALLOW_PRIVATE", False)
# Seconds each socket operation of one attempt may take (connect, send, each read).
PUBLISHER_WEBHOOKS_TIMEOUT = env_float("PUBLISHER_WEBHOOKS_TIMEOUT", 5.0, minimum=0.1)
# Retries: exponential from BASE seconds, each delay capped at MAX_DELAY, with jitter, for up to
# RETRY_WINDOW seconds after the event; then the delivery is `failed`.
PUBLISHER_WEBHOOKS_RETRY_BASE = env_float("PUBLISHER_WEBHOOKS_RETRY_BASE", 10.0, minimum=0.1)
PUBLISHER_WEBHOOKS_RETRY_MAX_DELAY = env_int("PUBLISHER_WEBHOOKS_RETRY_MAX_DELAY", 3600, minimum=1)
PUBLISHER_WEBHOOKS_RETRY_WINDOW = env_int("PUBLISHER_WEBHOOKS_RETRY_WINDOW", 24 * 3600, minimum=1)
# A sender that has not finished this long after its claim is presumed dead: the sweep sends again.
PUBLISHER_WEBHOOKS_LEASE_SECONDS = env_int("PUBLISHER_WEBHOOKS_LEASE_SECONDS", 60, minimum=1)
# How often the sweep job runs, and how many deliveries one run enqueues. (Not the scan's 10 s
# by default: jobs with equal intervals share one IntervalSchedule row in the admin.)
PUBLISHER_WEBHOOKS_SWEEP_INTERVAL = env_float("PUBLISHER_WEBHOOKS_SWEEP_INTERVAL", 15.0, minimum=0.1)
PUBLISHER_WEBHOOKS_BATCH = env_int("PUBLISHER_WEBHOOKS_BATCH", 500, minimum=1)
# The cleanup job deletes delivered and failed deliveries (the delivery log) older than this.
PUBLISHER_WEBHOOKS_RETENTION_DAYS = env_int("PUBLISHER_WEBHOOKS_RETENTION_DAYS", 30, minimum=1)

# --- Periodic operations -------------------------------------------------------------------
# The jobs are declared in scheduling/schedules.py and written to the database by
# `manage.py sync_schedules`; these are their defaults and limits.
# Beat: django-celery-beat's database scheduler plus a heartbeat, the daily report's catch-up
# at start and the optional standby lock (scheduling/beat.py).
CELERY_BEAT_SCHEDULER = "scheduling.beat:Scheduler"
# Notification expiry job: how often pending notifications past expires_at become `expired`.
PUBLISHER_EXPIRY_INTERVAL = env_int("PUBLISHER_EXPIRY_INTERVAL", 60, minimum=1)
# Seconds a notification stays worth sending, per kind (the fan-out stamps expires_at from it).
# Two kinds: an article's own mail and the mail about a change to it; both PUBLISHER_NOTIFICATION_TTL.
PUBLISHER_NOTIFICATION_EXPIRY = {"new-article": PUBLISHER_NOTIFICATION_TTL,
                                 "article-update": PUBLISHER_NOTIFICATION_TTL}
# Cleanup job: how often, what it keeps, and how much one run deletes before re-enqueueing.
PUBLISHER_CLEANUP_INTERVAL = env_int("PUBLISHER_CLEANUP_INTERVAL", 6 * 3600, minimum=60)
PUBLISHER_NOTIFICATION_RETENTION_DAYS = env_int("PUBLISHER_NOTIFICATION_RETENTION_DAYS", 30, minimum=1)
PUBLISHER_RUN_RETENTION_DAYS = env_int("PUBLISHER_RUN_RETENTION_DAYS", 90, minimum=1)
PUBLISHER_CLEANUP_BATCH = env_int("PUBLISHER_CLEANUP_BATCH", 5000, minimum=1)
PUBLISHER_CLEANUP_MAX_BATCHES = env_int("PUBLISHER_CLEANUP_MAX_BATCHES", 20, minimum=1)
# Daily report: built at this local time (HH:MM in TIME_ZONE) for the previous local day.
# Days missed while nothing ran are built at the next run, up to this many days back.
PUBLISHER_REPORT_AT = env_str("PUBLISHER_REPORT_AT", "08:00")
PUBLISHER_REPORT_CATCH_UP_DAYS = env_int("PUBLISHER_REPORT_CATCH_UP_DAYS", 14, minimum=1)
PUBLISHER_REPORT_WORST_FAILURES = env_int("PUBLISHER_REPORT_WORST_FAILURES", 10, minimum=1)
# Reports one run builds before it re-enqueues itself (a long catch-up is several short tasks).
PUBLISHER_REPORT_BATCH = env_int("PUBLISHER_REPORT_BATCH", 7, minimum=1)
# Health: the last scan must be younger than this (seconds). 0: six scan intervals, at least
# a minute, from the scan's schedule in the database.
PUBLISHER_HEALTH_SCAN_MAX_AGE = env_float("PUBLISHER_HEALTH_SCAN_MAX_AGE", 0.0, minimum=0.0)
PUBLISHER_HEALTH_BROKER_TIMEOUT = env_float("PUBLISHER_HEALTH_BROKER_TIMEOUT", 3.0, minimum=0.1)
# Beat writes its own heartbeat at most this often (seconds).
PUBLISHER_BEAT_HEARTBEAT_INTERVAL = env_int("PUBLISHER_BEAT_HEARTBEAT_INTERVAL", 10, minimum=1)
# A job's stored last run more than this many seconds ahead of beat's clock was written while a
# clock was wrong: beat treats it as a clock jump and resets it to now, so the job runs again
# within one interval instead of waiting until that stored time (scheduling/beat.py).
PUBLISHER_BEAT_CLOCK_TOLERANCE = env_float("PUBLISHER_BEAT_CLOCK_TOLERANCE", 10.0, minimum=0.0)
# Standby lock: with PUBLISHER_BEAT_LOCK=1 only the beat holding the lease sends tasks; another
# beat waits and takes over within PUBLISHER_BEAT_LOCK_TTL seconds when the holder stops.
PUBLISHER_BEAT_LOCK = env_bool("PUBLISHER_BEAT_LOCK", False)
PUBLISHER_BEAT_LOCK_TTL = env_int("PUBLISHER_BEAT_LOCK_TTL", 30, minimum=5)

# --- Observability -------------------------------------------------------------------------
# GET /metrics/ (Prometheus). With a token set, scrapers must send "Authorization: Bearer <token>";
# without one the endpoint answers only where PUBLISHER_METRICS_OPEN=1 (the default outside
# production; settings.prod closes it), else 404.
PUBLISHER_METRICS_TOKEN = env_str("PUBLISHER_METRICS_TOKEN", "")
PUBLISHER_METRICS_OPEN = env_bool("PUBLISHER_METRICS_OPEN", True)
# The lateness histogram covers articles published within this many seconds.
PUBLISHER_METRICS_LATENESS_WINDOW = env_int("PUBLISHER_METRICS_LATENESS_WINDOW", 86400, minimum=60)
# Optional error reporting: set SENTRY_DSN (and `pip install sentry-sdk==2.75.0`) to send errors
# from the web, worker and beat processes to Sentry. Not imported at all when unset.
SENTRY_DSN = env_str("SENTRY_DSN", "")
if SENTRY_DSN:
    try:
        import sentry_sdk
    except ImportError:
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured("SENTRY_DSN is set but sentry-sdk is not installed: "
                                   "pip install sentry-sdk==2.75.0 (or unset SENTRY_DSN).") from None
    sentry_sdk.init(dsn=SENTRY_DSN, environment=env_str("SENTRY_ENVIRONMENT", "production"),
                    traces_sample_rate=env_float("SENTRY_TRACES_SAMPLE_RATE", 0.0), send_default_pii=False)
