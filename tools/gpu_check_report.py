"""The report of tools/gpu_check.py: its goals judged on the measured items, and Markdown
tables of the report dict (the gpu_check.json layout)."""
from gpu_check_kernels import OUTPUTS

GOAL_SCA_SPEEDUP, GOAL_PEAK_MB = 3.0, 4710  # x over pytorch at SCA shapes; cp+bf16 MB (4.6 GB)


def goals(items, smoke):
    """The two goals the check exists to show, judged on the measured items."""
    by_id = {item['id']: item for item in items}
    triton, ref = by_id.get('speed/sca/triton', {}), by_id.get('speed/sca/pytorch', {})
    speedup = (ref['ms'] / triton['ms'] if triton.get('status') == 'done'
               and ref.get('status') == 'done' else None)
    cp_bf16 = by_id.get('train/cp+bf16', {})
    measure = ('max_memory_allocated_mb' if 'max_memory_allocated_mb' in cp_bf16
               else 'peak_mem_mb')
    peak = cp_bf16.get(measure)
    rows = [dict(goal=f'triton forward + backward at least {GOAL_SCA_SPEEDUP:g}x faster than '
                 'pytorch at SCA shapes', value=speedup, unit='x',
                 met=None if speedup is None else speedup >= GOAL_SCA_SPEEDUP),
            dict(goal=f'cp+bf16 baseline training peak at most {GOAL_PEAK_MB} MB ({measure})',
                 value=peak, unit='MB', met=None if peak is None else peak <= GOAL_PEAK_MB)]
    for row in rows:
        if smoke:  # tiny shapes on CPU say nothing about the goals
            row.update(met=None, status='n/a (smoke)')
        else:
            row['status'] = ('unknown' if row['met'] is None
                             else 'met' if row['met'] else 'not met')
    return rows


def status_text(item):
    text = {'failed': 'FAILED', 'error': 'ERROR'}.get(item['status'], item['status'])
    note = ' '.join(item.get('note', '').split())
    return f'{text}: {note[:120]}' if note else text


def fmt(value, spec, suffix=''):
    return '-' if value is None else format(value, spec) + suffix


def markdown(report):
    """The report as Markdown: a header line per run, then one table per section."""
    device, items = report['device'], report['items']
    gpu = (f"driver {device.get('driver')}, capability {device.get('capability')}, "
           if 'capability' in device else '')
    lines = ['# occnet GPU check' + (' (smoke)' if report['smoke'] else ''), '',
             f"{device.get('name', '?')}; {gpu}torch {device.get('torch', '?')}, triton "
             f"{device.get('triton', '?')}, CUDA {device.get('cuda', '?')}; commit "
             f"{report['commit']}", '',
             f"`{report['command']}`: {report['elapsed_s']:.0f} s of the {report['budget_s']:.0f}"
             f" s budget, {report['started']}. "
             + ('**Finished, ok.**' if report['ok'] and report['finished'] else
                '**Finished with failures.**' if report['finished'] else
                '**Not finished (partial results).**'), '',
             '## Goals', '', '| goal | measured | status |', '|---|---|---|']
    if device.get('status', 'done') != 'done':
        lines[2:2] = [f'Device check: {status_text(device)}', '']
    for g in report['goals']:
        lines.append(f"| {g['goal']} | {fmt(g['value'], '.3g', ' ' + g['unit'])} | "
                     f"{g['status']} |")
    tables = {
        'parity': ('Deformable attention parity: max error / max abs of the float64 '
                   'reference', ['case', 'dtype', 'backend', 'output', 'grad value',
                                 'grad locations', 'grad weights', 'tolerance'],
                   lambda i: [i['case'], i['dtype'], i['backend']]
                   + [fmt(i.get('errors', {}).get(o, {}).get('max_rel'), '.1e') for o in OUTPUTS]
                   + [fmt(i.get('tolerance'), '.0e')]),
        'speed': ('Deformable attention speed: fp32 forward + backward, median',
                  ['case', 'queries', 'backend', 'ms', 'vs pytorch', 'peak MB'],
                  lambda i: [i['case'], fmt(i.get('queries'), 'd'), i['backend'],
                             fmt(i.get('ms'), '.2f'), fmt(i.get('speedup'), '.3g', 'x'),
                             fmt(i.get('peak_mb'), '.0f')]),
        'train': (f"Training `{report['train_config']}`",
                  ['variant', 's / iter', 'peak MB (growth)', 'max allocated MB'],
                  lambda i: [i['variant'], fmt(i.get('sec_per_iter'), '.3f'),
                             fmt(i.get('peak_mem_mb'), '.0f'),
                             fmt(i.get('max_memory_allocated_mb'), '.0f')]),
        'infer': (f"Inference `{report['train_config']}`",
                  ['variant', 'frames / s', 'peak MB (growth)', 'max allocated MB'],
                  lambda i: [i['variant'], fmt(i.get('samples_per_sec'), '.2f'),
                             fmt(i.get('peak_mem_mb'), '.0f'),
                             fmt(i.get('max_memory_allocated_mb'), '.0f')])}
    for section, (title, header, cells) in tables.items():
        rows = [i for i in items if i['section'] == section]
        if not rows:
            continue
        lines += ['', f'## {title}', '', '| ' + ' | '.join(header + ['status']) + ' |',
                  '|' + '---|' * (len(header) + 1)]
        lines += ['| ' + ' | '.join(c.replace('|', '\\|') for c in cells(i) + [status_text(i)])
                  + ' |' for i in rows]
    return '\n'.join(lines) + '\n'
