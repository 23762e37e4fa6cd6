import { Type } from 'typebox';
import { JOB_LIST_STATES } from '../../messaging/queue-admin.js';
import { Timestamp } from './common.js';

const Count = Type.Integer({ minimum: 0 });

export const QueueParams = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 200, description: 'A service queue, `<service>_service_queue`.' }),
});

export const JobParams = Type.Object({
  name: QueueParams.properties.name,
  id: Type.String({ minLength: 1, maxLength: 300, description: 'The job id (a message id, or `<message id>-replay-<ms>` for a replayed one).' }),
});

export const JobLocationQuerystring = Type.Object(
  {
    from: Type.Optional(
      Type.Union([Type.Literal('queue'), Type.Literal('dlq')], { description: 'Look for the job only in the queue, or only in its dead-letter queue (default: see the route).' }),
    ),
  },
  { additionalProperties: false },
);

export const QueueSummaryView = Type.Object({
  name: Type.String(),
  service: Type.String(),
  counts: Type.Object({
    waiting: Count,
    active: Count,
    delayed: Count,
    failed: Count,
    completed: Count,
    paused: Type.Optional(Type.Integer({ minimum: 0, description: 'Present only while the queue is paused: the waiting jobs the pause holds back.' })),
  }),
  deadLetters: Type.Integer({ minimum: 0, description: 'Dead letters waiting in `<queue>.dlq`.' }),
  rates: Type.Object(
    {
      completedPerMinute: Count,
      failedPerMinute: Count,
      source: Type.Union([Type.Literal('metrics'), Type.Literal('finished-jobs')]),
    },
    {
      description:
        'metrics: BullMQ\'s queue metrics for the last whole minute (workers record them); finished-jobs: jobs finished in the last 60 s that are still kept.',
    },
  ),
  oldestWaitingAgeMs: Type.Union([Type.Integer({ minimum: 0 }), Type.Null()], { description: 'Milliseconds since the oldest waiting job was added; null when none waits.' }),
  consumers: Type.Integer({ minimum: 0, description: 'Workers connected to the queue.' }),
});

export const QueueList = Type.Object({ queues: Type.Array(QueueSummaryView) });

export const JobState = Type.Union(
  JOB_LIST_STATES.map((state) => Type.Literal(state)),
  { description: 'dead: the dead letters in the queue\'s dead-letter queue.' },
);

export const JobsQuerystring = Type.Object(
  {
    state: JobState,
    limit: Type.Integer({ minimum: 1, maximum: 500, default: 50 }),
    offset: Type.Integer({ minimum: 0, maximum: 1_000_000, default: 0 }),
  },
  { additionalProperties: false },
);

export const JobView = Type.Object({
  id: Type.String(),
  name: Type.String({ description: 'The message type.' }),
  state: JobState,
  data: Type.Unknown({ description: 'The message envelope; for a dead letter, the DeadLetter (reason, error, attempts, history, envelope).' }),
  attemptsMade: Count,
  failedReason: Type.Union([Type.String(), Type.Null()]),
  createdAt: Timestamp,
  processedAt: Type.Union([Timestamp, Type.Null()]),
  finishedAt: Type.Union([Timestamp, Type.Null()]),
});

export const JobPage = Type.Object({
  queue: Type.String(),
  state: JobState,
  total: Type.Integer({ minimum: 0, description: 'Jobs in that state in all.' }),
  offset: Count,
  limit: Count,
  jobs: Type.Array(JobView),
});

export const RetryResult = Type.Object({
  queue: Type.String(),
  id: Type.String(),
  outcome: Type.Union([Type.Literal('retried'), Type.Literal('replayed')], { description: 'retried: the failed job is waiting again; replayed: the dead letter\'s message was added as a new job.' }),
  jobId: Type.String({ description: 'The job now waiting.' }),
});

export const RemoveResult = Type.Object({
  queue: Type.String(),
  id: Type.String(),
  removedFrom: Type.Union([Type.Literal('queue'), Type.Literal('dlq')]),
  state: Type.String({ description: 'The state the job was in (dead for a dead letter).' }),
});

export const ReplayBody = Type.Union(
  [
    Type.Object(
      { ids: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 300 }), { minItems: 1, maxItems: 1000, description: 'Only these dead letters (default: all, oldest first, 1000 per call).' })) },
      { additionalProperties: false },
    ),
    Type.Null(),
  ],
);

export const ReplayReport = Type.Object({
  queue: Type.String(),
  replayed: Count,
  jobs: Type.Array(Type.Object({ deadLetterId: Type.String(), jobId: Type.String() })),
  skipped: Type.Array(Type.Object({ id: Type.String(), problem: Type.String() }), { description: 'Dead letters without a replayable message, left in place (discard them).' }),
  notFound: Type.Array(Type.String(), { description: 'Ids asked for that are not in the dead-letter queue.' }),
  remaining: Type.Integer({ minimum: 0, description: 'Dead letters still in the dead-letter queue, the skipped ones not counted: call again while this and replayed are above 0.' }),
});
