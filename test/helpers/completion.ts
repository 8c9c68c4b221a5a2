/**
 * Runs a bash completion as a shell does on Tab: bash-completion loaded, the completion script
 * sourced, COMP_WORDS and COMP_CWORD set from a command line, and the function that
 * `complete -p` names for the command called.
 */
import { execa } from 'execa';

export const BASH_COMPLETION = '/usr/share/bash-completion/bash_completion';

/** What Tab offers after `line` (the cursor at its end), with the completion script `source` loaded. */
export async function completeWith(source: string, line: string): Promise<string[]> {
  const script = `
source ${BASH_COMPLETION}
source "$1"
COMP_LINE=$2
COMP_POINT=\${#COMP_LINE}
read -ra COMP_WORDS <<<"$COMP_LINE"
[[ $COMP_LINE == *' ' ]] && COMP_WORDS+=('')
COMP_CWORD=$(( \${#COMP_WORDS[@]} - 1 ))
spec=$(complete -p "\${COMP_WORDS[0]}") || exit 3
fn=\${spec#*-F }
fn=\${fn%% *}
"$fn" "\${COMP_WORDS[0]}" "\${COMP_WORDS[COMP_CWORD]}" "\${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\\n' "\${COMPREPLY[@]}"
`;
  const result = await execa('bash', ['-c', script, 'complete', source, line]);
  return result.stdout.split('\n').filter((word) => word.length > 0).sort();
}

