# SPDX-License-Identifier: GPL-2.0
# bash completion for zvpoolctl(8): commands, subcommands, options, pool
# and volume names (from configfs: $ZVPOOLCTL_CONFIGFS or
# /sys/kernel/config/zvpool), devices and files, and the PROPERTY= keys of
# 'pool set' and 'volume set'. The command lists below follow the tool's
# command table and property tables (a host test checks them).

_zvpoolctl_root() {
    local r=/sys/kernel/config/zvpool i
    [[ -n ${ZVPOOLCTL_CONFIGFS-} ]] && r=$ZVPOOLCTL_CONFIGFS
    for ((i = 1; i < ${#COMP_WORDS[@]} - 1; i++)); do
        [[ ${COMP_WORDS[i]} == --configfs-root ]] && r=${COMP_WORDS[i + 1]}
    done
    printf '%s\n' "$r"
}

# Pool names: the directories of the configfs root.
_zvpoolctl_pools() {
    local root d
    root=$(_zvpoolctl_root)
    for d in "$root"/*/; do
        [[ -d $d ]] && basename -- "$d"
    done
}

# POOL/VOL names (with snapshots: POOL/VOL@SNAP) from each pool's volumes.
_zvpoolctl_volumes() {
    local root p want=$1 id name rest
    root=$(_zvpoolctl_root)
    for p in $(_zvpoolctl_pools); do
        [[ -r $root/$p/volumes ]] || continue
        while read -r id name rest; do
            [[ $id == '#'* || -z $name ]] && continue
            case $want in
            snapshots) [[ $name == *@* ]] || continue ;;
            volumes) [[ $name == *@* ]] && continue ;;
            esac
            printf '%s/%s\n' "$p" "$name"
        done <"$root/$p/volumes"
    done
}

_zvpoolctl() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
    local nouns="pool volume snapshot help"
    local globals="--help --version --cache"
    local i noun="" verb="" verbs="" opts="" args="" keys="" npos=0
    for ((i = 1; i < COMP_CWORD; i++)); do
        case ${COMP_WORDS[i]} in
        --cache | --configfs-root | --kmsg) ((i++)) ;;
        -*) ;;
        *)
            if [[ -z $noun ]]; then
                noun=${COMP_WORDS[i]}
            elif [[ -z $verb ]]; then
                verb=${COMP_WORDS[i]}
            else
                ((npos++))
            fi
            ;;
        esac
    done
    case $noun in
    pool) verbs="create assemble add scrub evacuate replace remove stop list status health events set get check import" ;;
    volume) verbs="create migrate clone promote delete resize set import export-image list show ident export unexport exports" ;;
    snapshot) verbs="create delete list send receive rollback" ;;
    help) verbs="pool volume snapshot" ;;
    esac
    case "$noun $verb" in
    "pool create") opts="--force --checkpoint-zones" args=devices ;;
    "pool assemble") opts="--no-volumes --read-only --rewind --degraded" args=devices ;;
    "pool add") opts="" args=pools ;;
    "pool scrub") opts="--wait --stop --rate" args=pools ;;

    "pool evacuate") opts="--wait --cancel" args=pools ;;
    "pool replace") opts="--wait" args=pools ;;
    "pool remove") opts="--force" args=pools ;;
    "pool stop") opts="--all" args=pools ;;
    "pool list") opts="--scripted --parsable --columns --json" args=pools ;;
    "pool status") opts="--scripted --parsable --json" args=pools ;;
    "pool health") opts="--scripted --parsable --json" args=pools ;;
    "pool events") opts="--json --count" args=pools ;;
    "pool set") opts="" args=pools keys="table_memory_limit= space_low_pct= space_critical_pct= no_space_timeout= pool_reserve_pct= tiering=" ;;
    "pool get") opts="--scripted --parsable --columns --json" args=pools ;;
    "pool check") opts="--json --journal --scripted" args=devices ;;
    "pool import") opts="--all --cached --dir --scripted --json --no-volumes --degraded" args=imports ;;
    "volume create") opts="--size --copies" args=pools ;;
    "volume migrate") opts="--to --wait --cancel" args=volumes ;;
    "volume clone") opts="" args=snapshots ;;
    "volume promote") opts="" args=volumes ;;
    "volume delete") opts="" args=volumes ;;
    "volume resize") opts="--size --offline --shrink" args=volumes ;;
    "volume set") opts="" args=volumes keys="riops= wiops= rbps= wbps= quota= reservation=" ;;
    "volume list") opts="--scripted --parsable --columns --json --type" args=pools ;;
    "volume show") opts="--scripted --parsable --columns --json" args=all ;;
    "volume import") opts="--quiet --format --follow-backing" args=pools ;;
    "volume export-image") opts="--quiet --format" args=all ;;
    "volume ident") opts="" args=disks ;;
    "volume export") opts="--nqn --transport --addr --port --host --no-persist" args=all ;;
    "volume unexport") opts="" args=all ;;
    "volume exports") opts="--scripted --parsable --columns --json" args=all ;;
    "snapshot create") opts="" args=volumes ;;
    "snapshot delete") opts="" args=snapshots ;;
    "snapshot list") opts="--scripted --parsable --columns --json" args=all ;;
    "snapshot send") opts="--quiet --incremental" args=snapshots ;;
    "snapshot receive") opts="--quiet --resume" args=pools ;;
    "snapshot rollback") opts="" args=snapshots ;;
    esac
    case $prev in
    --cache | --configfs-root | --kmsg)
        COMPREPLY=($(compgen -f -- "$cur"))
        return
        ;;
    --dir | -d)
        COMPREPLY=($(compgen -d -- "$cur"))
        return
        ;;
    --size | -s | --columns | -o)
        return
        ;;
    --type | -t)
        COMPREPLY=($(compgen -W "volume clone snapshot all" -- "$cur"))
        return
        ;;
    --format)
        COMPREPLY=($(compgen -W "raw qcow2" -- "$cur"))
        return
        ;;
    --transport)
        COMPREPLY=($(compgen -W "loop tcp" -- "$cur"))
        return
        ;;
    --nqn | --addr | --port | --host)
        return
        ;;
    esac
    if [[ -z $noun ]]; then
        if [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W "$globals" -- "$cur"))
        else
            COMPREPLY=($(compgen -W "$nouns" -- "$cur"))
        fi
        return
    fi
    if [[ -z $verb ]]; then
        COMPREPLY=($(compgen -W "$verbs --help" -- "$cur"))
        return
    fi
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$opts --help" -- "$cur"))
        return
    fi
    # After the pool or volume: PROPERTY= keys (a value after '=' is free).
    if [[ -n $keys && $npos -ge 1 ]]; then
        [[ $cur == *=* || $prev == = ]] && return
        COMPREPLY=($(compgen -W "$keys" -- "$cur"))
        compopt -o nospace 2>/dev/null
        return
    fi
    local words
    case $args in
    pools | imports) words=$(_zvpoolctl_pools) ;;
    volumes) words=$(_zvpoolctl_volumes volumes) ;;
    snapshots) words=$(_zvpoolctl_volumes snapshots) ;;
    all) words="$(_zvpoolctl_pools) $(_zvpoolctl_volumes all)" ;;
    disks) words=$(cd /dev 2>/dev/null && compgen -G 'zvpool[0-9]*') ;;
    devices)
        COMPREPLY=($(compgen -f -- "${cur:-/dev/}"))
        return
        ;;
    esac
    COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -F _zvpoolctl zvpoolctl
