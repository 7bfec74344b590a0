<?php
// Moodle's privacy API on local_riskstream for one user: compliance, contexts, export, delete.
// php privacy.php --user=ID [--delete]   (prints one JSON object)
define('CLI_SCRIPT', true);
require(getenv('MOODLE_DIR') . '/config.php');
require_once($CFG->libdir . '/clilib.php');

use core_privacy\local\request\approved_contextlist;
use local_riskstream\privacy\provider;

[$o] = cli_get_params(['user' => 0, 'delete' => false]);
\core\session\manager::set_user(get_admin());
$user = core_user::get_user((int)$o['user'], '*', MUST_EXIST);
$manager = new \core_privacy\manager();
$compliant = $manager->component_is_compliant('local_riskstream');
$contexts = provider::get_contexts_for_userid($user->id);
$ids = $contexts->get_contextids();
$approved = new approved_contextlist($user, 'local_riskstream', $ids);
provider::export_user_data($approved);
provider::export_user_preferences($user->id);
$zipfile = \core_privacy\local\request\writer::with_context(context_system::instance())->finalise_content();
$zip = new ZipArchive();
$exported = '';
if ($zip->open($zipfile) === true) {
    for ($k = 0; $k < $zip->numFiles; $k++) {
        $name = $zip->getNameIndex($k);
        if (str_ends_with($name, '.json')) {
            $exported .= $zip->getFromIndex($k);
        }
    }
    $zip->close();
}
$out = ['compliant' => $compliant, 'contexts' => array_map('intval', $ids), 'exported' => $exported];
if ($o['delete']) {
    provider::delete_data_for_user($approved);
    $out['alerts_left'] = $DB->count_records('local_riskstream_alerts', ['userid' => $user->id]);
    $out['feedback_left'] = $DB->count_records_select('local_riskstream_feedback',
        'userid = :u OR teacherid = :t', ['u' => $user->id, 't' => $user->id]);
}
echo json_encode($out), "\n";
