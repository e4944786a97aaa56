#!/usr/bin/env python3
"""CPU view of a dotnet-trace thread-time profile (docs/benchmarks.md, "Profiling").

dotnet-trace's `dotnet-sampled-thread-time` profile samples every thread, waiting or not, so its own `topN`
report is dominated by thread-pool waits. This keeps only the samples whose leaf is CPU_TIME (managed code
running) and prints the frames with the largest share of them, inclusive. Samples of the finalizer thread are left
out: it shows up as "running" DynamicResolver.Finalize for most of a Docker.DotNet process's life (Kiln and the
bare Engine API loop alike), which is not CPU that the process spends.

    dotnet-trace collect --profile dotnet-sampled-thread-time -o run.nettrace -- dotnet kiln.dll run ...
    dotnet-trace convert run.nettrace --format Speedscope -o run
    bench/speedscope-cpu.py run.speedscope.json [TOP]
"""
import json, collections, sys
d=json.load(open(sys.argv[1])); top=int(sys.argv[2]) if len(sys.argv)>2 else 50
frames=[f['name'] for f in d['shared']['frames']]
incl=collections.Counter(); running=0
fin=next((i for i, f in enumerate(frames) if f.endswith('System.GC.RunFinalizers()')), -1)
for p in d['profiles']:
    stack=[]; last=None
    for ev in p['events']:
        t=ev['at']
        if last is not None and stack and frames[stack[-1]]=='CPU_TIME' and fin not in stack:
            w=t-last; running+=w
            for f in set(stack): incl[frames[f]]+=w
        last=t
        if ev['type']=='O': stack.append(ev['frame'])
        else: stack.pop()
print(f'managed CPU samples: {running:.0f} ms')
shown = [(k, v) for k, v in incl.most_common() if not k.startswith(('Process64', '(Non-', 'Threads', 'Thread (', 'CPU_TIME'))]
for k, v in shown[:top]:
    print(f"{100 * v / running:6.2f}% {k[:160]}")
