// Validates a CSAF 2.0 document with the BSI CSAF validator library: the strict schema test
// plus every mandatory test (section 6.1 of the CSAF standard, which includes the VEX profile
// rules). Prints the errors and exits 1 when the document is not valid.
import { readFileSync } from 'node:fs'
import validateStrict from '@secvisogram/csaf-validator-lib/validateStrict.js'
import * as mandatory from '@secvisogram/csaf-validator-lib/mandatoryTests.js'
import { csaf_2_0_strict } from '@secvisogram/csaf-validator-lib/schemaTests.js'

const doc = JSON.parse(readFileSync(process.argv[2], 'utf8'))
const result = await validateStrict([csaf_2_0_strict, ...Object.values(mandatory)], doc)
for (const t of result.tests ?? []) {
  for (const e of t.errors ?? []) console.error(`${t.name} ${e.instancePath}: ${e.message}`)
}
console.log(result.isValid ? 'valid' : 'invalid')
process.exit(result.isValid ? 0 : 1)
