// Prints FIRST's reference base score for every CVSS v3.0 and v3.1 base vector, one
// "<vector> <score> <severity>" line each, using the calculators bundled in the BSI validator
// (the ones its test 6.1.9 recomputes scores with).
// usage: node cvss_reference.mjs <path to lib/shared/first.js>
import { pathToFileURL } from 'node:url'

const { cvss30, cvss31 } = await import(pathToFileURL(process.argv[2]).href)
const metrics = [
  ['AV', ['N', 'A', 'L', 'P']],
  ['AC', ['L', 'H']],
  ['PR', ['N', 'L', 'H']],
  ['UI', ['N', 'R']],
  ['S', ['U', 'C']],
  ['C', ['H', 'L', 'N']],
  ['I', ['H', 'L', 'N']],
  ['A', ['H', 'L', 'N']],
]
const lines = []
for (const [prefix, calc] of [['CVSS:3.0', cvss30], ['CVSS:3.1', cvss31]]) {
  const walk = (i, parts) => {
    if (i === metrics.length) {
      const v = [prefix, ...parts].join('/')
      const r = calc.calculateCVSSFromVector(v)
      if (!r.success) throw new Error(`${v}: ${JSON.stringify(r.errorType)}`)
      lines.push(`${v} ${r.baseMetricScore} ${r.baseSeverity.toUpperCase()}`)
      return
    }
    for (const value of metrics[i][1]) walk(i + 1, [...parts, `${metrics[i][0]}:${value}`])
  }
  walk(0, [])
}
console.log(lines.join('\n'))
