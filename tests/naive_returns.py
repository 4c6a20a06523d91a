"""Slow, obvious reference for reward-to-go: a plain Python double loop."""
import numpy as np


def naive_reward_to_go(reward, done, gamma, time_dim=-2, bootstrap=None):
    """Reward-to-go in float64, one trajectory at a time, one step at a time.

    ``bootstrap`` (None, a scalar or an array of the reward's shape without
    its time dim) is the value after the last step; None counts as 0, which
    is the truncated end.
    """
    reward = np.asarray(reward, dtype=np.float64)
    done = np.asarray(done)
    r = np.moveaxis(reward, time_dim, -1)
    d = np.moveaxis(done, time_dim, -1)
    batch_shape = r.shape[:-1]
    if bootstrap is None:
        boot = np.zeros(batch_shape)
    else:
        boot = np.broadcast_to(np.asarray(bootstrap, dtype=np.float64), batch_shape)
    result = np.zeros(r.shape)
    n_steps = r.shape[-1]
    for index in np.ndindex(*batch_shape):
        running = float(boot[index])
        for t in reversed(range(n_steps)):
            if d[index + (t,)]:
                running = float(r[index + (t,)])
            else:
                running = float(r[index + (t,)]) + gamma * running
            result[index + (t,)] = running
    return np.moveaxis(result, -1, time_dim)
